"""training/ is grouped by the stages a model goes through, and imports go one way: a stage
imports only the stages before it, so what comes later never changes what came before."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINING = ROOT / "training"
# The order of training/__init__.py's docstring. adapt follows ship (a fine-tuned model is
# stored as the shipped one is); gpu tooling may use any stage and no stage imports it.
RANK = {"data": 0, "fit": 1, "measure": 2, "ship": 3, "adapt": 4, "gpu": 5}


def stage_of(module: str) -> str | None:
    """training.fit.export -> "fit"; anything outside a stage package -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "training" and len(parts) > 1 and parts[1] in RANK else None


def imported(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from training import fit` names a package, `from training.fit import export` a module
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def stage_files() -> list[Path]:
    return sorted(p for stage in RANK for p in (TRAINING / stage).rglob("*.py"))


def test_every_stage_is_a_package_that_says_what_it_is():
    assert sorted(p.name for p in TRAINING.iterdir() if (p / "__init__.py").is_file()) == sorted(
        RANK
    )
    for stage in RANK:
        doc = ast.get_docstring(ast.parse((TRAINING / stage / "__init__.py").read_text()))
        assert doc and len(doc.split()) >= 8, stage
    overview = ast.get_docstring(ast.parse((TRAINING / "__init__.py").read_text()))
    assert all(re.search(rf"^\s+{stage}\s", overview, re.M) for stage in RANK)


def test_imports_go_one_way():
    backward = []
    for path in stage_files():
        here = stage_of("training." + ".".join(path.relative_to(TRAINING).with_suffix("").parts))
        for line, module in imported(path):
            there = stage_of(module)
            if there and there != here and not RANK[there] < RANK[here]:
                backward.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not backward, "\n".join(backward)


def test_code_imports_the_stages_never_an_old_path():
    """The aliases (training/<old>.py) are for commands typed by people, not for imports."""
    sources = [*stage_files(), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    sources += [*(ROOT / "tools").rglob("*.py")]
    old = []
    for path in sources:
        for line, module in imported(path):
            if module.startswith("training.") and not stage_of(module):
                old.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not old, "\n".join(old)


def test_the_checker_sees_a_backward_import(tmp_path):
    """The rule above fails on the kind of import it exists to stop."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from training.ship.calibrate import calibrate\n")
    assert ("training.ship.calibrate") in [m for _, m in imported(path)]
    assert not RANK[stage_of("training.ship.calibrate")] < RANK["measure"]


def test_no_stage_imports_gpu_tooling_and_the_server_imports_no_training():
    for path in stage_files():
        if path.parts[-2] != "gpu":
            assert not any(stage_of(m) == "gpu" for _, m in imported(path)), path
    for path in (ROOT / "function").rglob("*.py"):
        assert not any(m.split(".")[0] == "training" for _, m in imported(path)), path


def aliases() -> list[Path]:
    return sorted(p for p in TRAINING.glob("*.py") if p.name != "__init__.py")


def alias_target(path: Path) -> str:
    """A thin alias: a docstring naming where the module went, `from X import main`, and the
    `__main__` guard; nothing else."""
    tree = ast.parse(path.read_text())
    doc, imp, guard = tree.body
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), path
    assert isinstance(imp, ast.ImportFrom) and [a.name for a in imp.names] == ["main"], path
    assert isinstance(guard, ast.If) and "__main__" in ast.unparse(guard.test), path
    assert f"moved to {imp.module};" in doc.value.value, path
    return imp.module


@pytest.mark.parametrize("path", aliases(), ids=lambda p: p.stem)
def test_old_commands_are_thin_aliases_listed_in_the_readme(path):
    target = alias_target(path)
    assert stage_of(target), target
    module = TRAINING.parent.joinpath(*target.split(".")).with_suffix(".py")
    assert "def main(" in module.read_text(), target
    readme = (TRAINING / "README.md").read_text()
    assert f"| `training.{path.stem}` | `{target}` |" in readme


def test_the_top_level_holds_only_aliases_and_the_stages():
    loose = {p.name for p in TRAINING.iterdir()} - {f"{p.name}" for p in aliases()}
    expected = {*RANK, "__init__.py", "README.md", "requirements.txt", "__pycache__"}
    assert loose <= expected, loose - expected


def test_an_alias_runs_the_moved_command():
    """`python -m training.get_data` still answers, with the new module's own help."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "training.get_data", "--help"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Build FER+'s folder layout from its two downloads" in done.stdout


def test_every_command_the_docs_and_makefile_name_exists():
    """`python -m training.X` in a page, the Makefile or a script names a module that is there."""
    pages = [ROOT / "Makefile", ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    pages += [*TRAINING.rglob("*.md"), *TRAINING.rglob("*.sh"), *TRAINING.rglob("*.py")]
    named = {
        (page.relative_to(ROOT), module)
        for page in pages
        for module in re.findall(r"-m[\"', ]+(training(?:\.\w+)+)", page.read_text())
    }
    assert len({m for _, m in named}) >= 20
    missing = [
        f"{page}: {module}"
        for page, module in sorted(named)
        if not ROOT.joinpath(*module.split(".")).with_suffix(".py").is_file()
    ]
    assert not missing, "\n".join(missing)
