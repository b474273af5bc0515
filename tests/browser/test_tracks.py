"""site/js/tracks.js on its own, in Node: how a tracking.js proposal becomes a face (the
server's check), stops being one, and which face is the main one. The page tests
(test_scenes.py) show the same rules at work on a camera."""

from __future__ import annotations

from node_script import run_node

SCRIPT = """
import { readCheck, Track, Tracks, TRACKING } from './site/js/tracks.js';
const P = { Happiness: 0.9, Neutral: 0.1 };
const square = { x: 100, y: 50, width: 192, height: 192 };  // a crop sent at 96 px: 2 px each
const yes = { found: true, score: 0.99, box: { x: 24, y: 20, width: 48, height: 56 } };
const no = { found: false, score: 0, box: null };
const out = {};

// A proposal is checked once tracking.js has seen it twice; an answer without a face is
// never shown, and after two such answers the box is set aside and only re-checked rarely.
let t = new Tracks();
t.match([{ x: 120, y: 70, width: 90, height: 90 }], 0);
const jacket = t.all[0];
out.dueAfterOne = jacket.due(10, 33);
t.match([{ x: 121, y: 70, width: 90, height: 90 }], 20);
out.dueAfterTwo = jacket.due(30, 33);
out.firstMiss = jacket.settle(readCheck(no, square, 96), P, 40);
out.shownAfterMiss = jacket.shown;
jacket.sentAt = 40;
jacket.settle(readCheck(no, square, 96), P, 80);
jacket.sentAt = 80;
out.rejected = jacket.rejected;
out.mainWhenOnlyRejected = t.main();
t.match([{ x: 120, y: 70, width: 90, height: 90 }], 200);
out.dueSoonAfterRejection = jacket.due(300, 33);
t.match([{ x: 120, y: 70, width: 90, height: 90 }], 70 + TRACKING.reprobeMs);
out.dueAfterReprobe = jacket.due(80 + TRACKING.reprobeMs, 33);
out.smootherEmpty = jacket.smoother.ranked().length === 0;

// A face: the server's box (crop pixels) becomes the track's box (frame pixels).
t = new Tracks();
t.match([{ x: 110, y: 60, width: 80, height: 80 }], 0);
t.match([{ x: 110, y: 60, width: 80, height: 80 }], 10);
const face = t.all[0];
out.found = face.settle(readCheck(yes, square, 96), P, 50);
out.box = face.box;
out.shown = face.shown;
out.top = face.smoother.top();
// Two misses in a row keep a verified face; the third drops it.
face.settle(readCheck(no, square, 96), P, 60);
face.settle(readCheck(no, square, 96), P, 70);
out.shownAfterTwoMisses = face.shown;
face.settle(readCheck(no, square, 96), P, 80);
out.shownAfterThreeMisses = face.shown;

// The main face is the largest verified one, never a larger unverified box; a box on the
// same person (a tie under the chin) is not followed at all.
t = new Tracks();
const small = new Track({ x: 10, y: 10, width: 40, height: 40 }, 0);
const big = new Track({ x: 300, y: 10, width: 150, height: 150 }, 0);
t.add(small);
t.add(big);
small.settle(null, P, 5);  // no check block (an older server): trusted as before
out.mainIsSmallVerified = t.main() === small;
big.settle({ found: true, box: { x: 300, y: 10, width: 150, height: 150 } }, P, 6);
out.mainIsBigOnceVerified = t.main() === big;
t.match([{ x: 340, y: 120, width: 70, height: 70 }], 7);
t.match([{ x: 345, y: 170, width: 60, height: 60 }], 8);  // the tie, under the chin
out.tracksAfterTieProposal = t.all.length;
out.faces = t.faces().length;

// A face smaller than a share of the crop is not taken as the crop's face; bad blocks are null.
out.tooSmall = readCheck({ found: true, box: { x: 0, y: 0, width: 5, height: 5 } }, square, 96);
out.noBlock = readCheck(undefined, square, 96);
out.badBlock = readCheck({ found: 'yes' }, square, 96);
console.log(JSON.stringify(out));
"""


def test_tracks_verify_drop_and_choose_the_main_face():
    out = run_node(SCRIPT, timeout=30)
    assert out["dueAfterOne"] is False and out["dueAfterTwo"] is True
    assert out["firstMiss"] is False and out["shownAfterMiss"] is False
    assert out["rejected"] is True and out["mainWhenOnlyRejected"] is None
    assert out["dueSoonAfterRejection"] is False and out["dueAfterReprobe"] is True
    assert out["smootherEmpty"] is True  # a non-face's emotion is never kept
    assert out["found"] is True and out["shown"] is True and out["top"] == "Happiness"
    assert out["box"] == {"x": 148, "y": 90, "width": 96, "height": 112}
    assert out["shownAfterTwoMisses"] is True and out["shownAfterThreeMisses"] is False
    assert out["mainIsSmallVerified"] is True and out["mainIsBigOnceVerified"] is True
    assert out["tracksAfterTieProposal"] == 2 and out["faces"] == 2
    assert out["tooSmall"] == {"found": False, "box": None}
    assert out["noBlock"] is None and out["badBlock"] is None
