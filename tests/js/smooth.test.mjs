// site/js/smooth.js: the bars' moving average has the time constant docs/live-view.md states,
// and the same step response whatever the answer rate.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Smoother } from '../../site/js/smooth.js';
import { documented } from './documents.mjs';

const LIVE_VIEW = 'docs/live-view.md';

const SAD = { Sadness: 1 };
const HAPPY = { Happiness: 1 };

/** Happiness after a step from SAD to HAPPY, answers every `gap` ms for `span` ms. */
function step(smoother, gap, span) {
  smoother.add(SAD, 0);
  for (let t = gap; t <= span + 1e-9; t += gap) smoother.add(HAPPY, t);
  return smoother.values.Happiness;
}

test('the default time constant is the live view page\'s', () => {
  const [tau] = documented(
    LIVE_VIEW,
    'moving average of its answers with a (\\d+) ms time constant',
  );
  assert.equal(new Smoother().tau, tau);
  // After one time constant a step has gone 1 - 1/e of the way, whatever the constant.
  const after = step(new Smoother(), tau, tau);
  assert.ok(Math.abs(after - (1 - Math.exp(-1))) < 1e-9, `${after}`);
});

test('the step response does not depend on the answer rate', () => {
  const tau = new Smoother().tau;
  const expected = 1 - Math.exp(-1000 / tau);
  for (const perSecond of [5, 10, 25]) {
    const got = step(new Smoother(), 1000 / perSecond, 1000);
    assert.ok(Math.abs(got - expected) < 1e-9, `${perSecond}/s: ${got} against ${expected}`);
  }
  assert.ok(expected > 0.5 && expected < 0.99, 'one second is neither instant nor frozen');
});

test('an answer moves the average by 1 - exp(-dt / tau), no more', () => {
  const s = new Smoother(400);
  s.add(SAD, 0);
  assert.deepEqual(s.ranked()[0], ['Sadness', 1]); // the first answer is taken as it is
  s.add(HAPPY, 100);
  const alpha = 1 - Math.exp(-100 / 400);
  assert.ok(Math.abs(s.values.Happiness - alpha) < 1e-12);
  assert.ok(Math.abs(s.values.Sadness - (1 - alpha)) < 1e-12);
  assert.equal(s.top(), 'Sadness'); // one quarter of a time constant does not flip the label
  s.add(HAPPY, 100); // no time passed: nothing moves
  assert.ok(Math.abs(s.values.Happiness - alpha) < 1e-12);
  assert.equal(s.version, 3);
});
