// The crops the page takes around a tracking.js box: the live view's (sent to the server, or
// checked by the same detector on this device), sized as docs/live-view.md says, so a face
// fills the share of the crop that the design measured.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CROP_SIZE, squareAround } from '../../site/js/faces.js';
import { CROP_MARGIN } from '../../site/js/live.js';
import { documented } from './documents.mjs';

const LIVE_VIEW = 'docs/live-view.md';
const ON_DEVICE = 'docs/on-device.md';

const BOX = { x: 250, y: 180, width: 100, height: 120 }; // tracking.js boxes are about square
const close = (a, b) => Math.abs(a - b) < 1e-9;

test('the live crop has the live view page\'s size and margin', () => {
  const [size, percent] = documented(
    LIVE_VIEW,
    'goes out as a (\\d+) px crop with a (\\d+)% margin',
  );
  assert.equal(CROP_SIZE, size);
  assert.equal(CROP_MARGIN, percent / 100);
  const square = squareAround(BOX, 640, 480, CROP_MARGIN);
  // The box's longer side fills 1 / (1 + 2 x margin) of the crop: two thirds at 25%.
  assert.ok(close(square.width, 120 * (1 + 2 * (percent / 100))), `${square.width}`);
  assert.ok(close(BOX.height / square.height, 1 / (1 + (2 * percent) / 100)));
  assert.ok(close(square.x + square.width / 2, 300) && close(square.y + square.height / 2, 240));
});

test('the on-device crop has the on-device page\'s margin, the server\'s', () => {
  // On this device the same detector checks and re-frames the crop (issue 22): same margin.
  const [percent] = documented(
    ON_DEVICE,
    'The live view\'s crops \\((\\d+)% margin, as for the server\\)',
  );
  assert.equal(CROP_MARGIN, percent / 100);
  const square = squareAround(BOX, 640, 480, CROP_MARGIN);
  assert.ok(close(square.width, 120 * (1 + (2 * percent) / 100)), `${square.width}`);
  assert.equal(square.width, square.height);
});

test('a crop near the frame edge stays inside the frame and keeps its side', () => {
  const square = squareAround({ x: 580, y: -10, width: 80, height: 80 }, 640, 480, CROP_MARGIN);
  assert.ok(close(square.width, 120));
  assert.ok(square.x >= 0 && square.y >= 0);
  assert.ok(square.x + square.width <= 640 && square.y + square.height <= 480);
  // Never larger than the frame's shorter side.
  assert.equal(squareAround({ x: 0, y: 0, width: 400, height: 400 }, 640, 480, 0.25).width, 480);
});
