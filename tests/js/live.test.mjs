// The live view's numbers docs/live-view.md states (tracking.js's search, the pace of
// detection, the rules that verify and drop faces, when the result pauses), held to the code's
// constants.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TRACKER_OPTIONS } from '../../site/js/faces.js';
import { DETECT_EVERY_MS, DETECT_SETTLED_MS, DETECTION, STALE_AFTER_MS } from '../../site/js/live.js';
import { TRACKING } from '../../site/js/tracks.js';
import { documented } from './documents.mjs';

const LIVE_VIEW = 'docs/live-view.md';

test('tracking.js searches the live view page\'s copy of the frame, at its pace', () => {
  const [width, initial, step, edges, factor, every, settled] = documented(
    LIVE_VIEW,
    'tracking.js searches a (\\d+) px wide copy of the frame \\(initial scale ([\\d.]+), step ' +
      '([\\d.]+), edge density ([\\d.]+), scale factor ([\\d.]+)\\) every (\\d+) ms while some ' +
      'box is not yet judged, every (\\d+) ms once all are',
  );
  assert.equal(DETECTION.width, width);
  assert.deepEqual(DETECTION.options, {
    initialScale: initial, stepSize: step, edgesDensity: edges, scaleFactor: factor,
  });
  assert.equal(DETECT_EVERY_MS, every);
  assert.equal(DETECT_SETTLED_MS, settled);
});

test('the seed\'s tracking.js settings are the live view page\'s row', () => {
  const [width, initial] = documented(
    LIVE_VIEW,
    '\\| (\\d+) px, initial scale ([\\d.]+) \\(the seed\'s\\)',
  );
  assert.equal(width, 320);
  assert.equal(TRACKER_OPTIONS.initialScale, initial);
});

test('faces are verified, set aside and dropped as the live view page says', () => {
  const [misses, verifiedMisses, reprobe, maxReprobe] = documented(
    LIVE_VIEW,
    'after (\\d+) such answers \\((\\d+) for a verified face\\) the box is set aside, ' +
      're-checked after (\\d+) s, then ever more rarely \\(up to (\\d+) s\\)',
  );
  assert.equal(TRACKING.missesToReject, misses);
  assert.equal(TRACKING.missesToDrop, verifiedMisses);
  assert.equal(TRACKING.reprobeMs, reprobe * 1000);
  assert.equal(TRACKING.maxReprobeMs, maxReprobe * 1000);
  documented(LIVE_VIEW, 'A box (proposed twice) goes out');
  assert.equal(TRACKING.hitsToProbe, 2);
  const [larger] = documented(LIVE_VIEW, 'it changes when another is (\\d+)% larger');
  assert.ok(Math.abs(TRACKING.mainHysteresis - (1 + larger / 100)) < 1e-9);
});

test('the result pauses after the live view page\'s silence', () => {
  const [seconds] = documented(LIVE_VIEW, 'an error, or no answer for (\\d+) s\\)');
  assert.equal(STALE_AFTER_MS, seconds * 1000);
});
