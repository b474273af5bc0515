"""What the accessibility and phone tests share: axe-core (from npm, pinned in package.json) run
in the page, the two screen sizes, and the layout checks (no sideways scroll, no control
overlapped or covered)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("critical", "serious")

# Desktop, and a phone held upright (an iPhone 12-15's CSS viewport), touch.
SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}


def new_context(browser, server: str, size: str):
    """A context at `size` with axe-core in every page (an init script, which the page's CSP
    does not block: it allows no inline script)."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` (make test does)")
    context = browser.new_context(**SIZES[size])
    context.grant_permissions(["camera"], origin=server.rstrip("/"))
    context.add_init_script(path=str(AXE))
    return context


def axe_violations(page, impacts=BLOCKING) -> list[str]:
    """axe-core's violations of `impacts` on the page as it is now: 'rule (impact): targets'."""
    found = page.evaluate(
        """async (impacts) => {
            const result = await axe.run(document, { resultTypes: ['violations'] });
            return result.violations
                .filter((v) => impacts.includes(v.impact))
                .map((v) => `${v.id} (${v.impact}, ${v.nodes.length}): `
                    + v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(', '));
        }""",
        list(impacts),
    )
    return found


# Every control a person can operate, as it is seen: a radio or the hidden file input by its
# label (the part that is drawn and tapped).
_CONTROLS = """() => {
    const seen = new Set();
    const out = [];
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href], summary')) {
        const shown = el.matches('input[type=radio], input[type=checkbox], input[type=file]')
            ? (el.closest('label') || el) : el;
        if (seen.has(shown) || !shown.getClientRects().length) continue;
        if (getComputedStyle(shown).visibility === 'hidden') continue;
        seen.add(shown);
        out.push(shown);
    }
    return out;
}"""

LAYOUT = (
    """() => {
    const controls = (__CONTROLS__)();
    const name = (el) => (el.id ? '#' + el.id : el.tagName.toLowerCase())
        + ' "' + (el.textContent || el.value || '').trim().slice(0, 30) + '"';
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) {
        problems.push(`the page scrolls sideways: ${root.scrollWidth} > ${root.clientWidth} px`);
    }
    const box = (el) => {
        const r = el.getBoundingClientRect();
        return { x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height };
    };
    for (const sel of ['#stage', '.panel.result', '#upload-panel', '#dropzone']) {
        const el = document.querySelector(sel);
        const b = el && box(el);
        if (b && (b.x < 0 || b.x + b.w > root.clientWidth + 0.5)) {
            problems.push(`${sel} does not fit the width (${b.x}..${b.x + b.w})`);
        }
    }
    const boxes = controls.map(box);
    for (let i = 0; i < controls.length; i++) {
        for (let j = i + 1; j < controls.length; j++) {
            if (controls[i].contains(controls[j]) || controls[j].contains(controls[i])) continue;
            const a = boxes[i], b = boxes[j];
            const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
            const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
            if (w > 0.5 && h > 0.5) problems.push(`${name(controls[i])} overlaps ${name(controls[j])}`);
        }
    }
    // Nothing drawn over a control: what is hit at its centre, once scrolled into view, is it.
    const x0 = scrollX, y0 = scrollY;
    for (const el of controls) {
        el.scrollIntoView({ block: 'center', inline: 'nearest' });
        const r = el.getBoundingClientRect();
        const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        if (!hit || !(el.contains(hit) || hit.closest('label') === el)) {
            problems.push(`${name(el)} is covered by ${hit ? name(hit) : 'nothing'}`);
        }
    }
    scrollTo(x0, y0);
    return { problems, controls: controls.map(name) };
}"""
).replace("__CONTROLS__", _CONTROLS)


def layout_problems(page) -> list[str]:
    """Sideways scrolling, a panel wider than the screen, controls that overlap or are covered."""
    return page.evaluate(LAYOUT)["problems"]


def controls(page) -> list[str]:
    return page.evaluate(LAYOUT)["controls"]
