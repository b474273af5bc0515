// A personal adjustment of the model's answers, learned from a few labelled frames of one
// person (the page's "Calibrate to my face"). Pure: no DOM, no network; runs in the page and
// in node. The same fit exists in Python for deployments (emotion/recalibration.py) and the
// two are tested against each other.
//
// The adjustment is one bias per class on the log-probabilities: q_c ∝ p_c · exp(b_c). It is
// fitted by minimising the class-balanced negative log-likelihood of the labels among the
// labelled classes (it only reorders the expressions it has frames of, and never learns that
// an expression nobody showed never happens) plus `penalty · |b|²` (which pulls b toward 0
// when frames are few), every b_c kept within ±bound. Classes without frames keep b_c = 0.
// It needs frames of two expressions or more.

export const CLASSES = [
  'Anger', 'Disgust', 'Surprise', 'Sadness', 'Happiness', 'Neutral', 'Contempt', 'Fear',
];

// Chosen on simulated people (python -m bench.personal; README "Calibrate to my face").
export const FIT = Object.freeze({ penalty: 0.02, bound: 4, steps: 400, floor: 1e-6 });

const SUM_TOLERANCE = 0.01; // the server rounds each probability to 6 decimals

/** The 8 probabilities as an array in CLASSES order; throws on anything else. */
export function probabilityVector(predictions, where = 'predictions') {
  if (!predictions || typeof predictions !== 'object' || Array.isArray(predictions)) {
    throw new Error(`${where} must be an object of {class: probability}.`);
  }
  for (const name of Object.keys(predictions)) {
    if (!CLASSES.includes(name)) throw new Error(`${where}: unknown class "${name}".`);
  }
  const values = CLASSES.map((name) => {
    const p = predictions[name];
    if (typeof p !== 'number' || !Number.isFinite(p) || p < 0 || p > 1) {
      throw new Error(`${where}: ${name} must be a probability from 0 to 1, got ${p}.`);
    }
    return p;
  });
  const sum = values.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > SUM_TOLERANCE) {
    throw new Error(`${where}: the probabilities sum to ${sum.toFixed(4)}, not 1.`);
  }
  return values;
}

// A class without frames drops out of the likelihood: log-probability "minus infinity".
const ABSENT = -1e9;

function checkSamples(samples) {
  if (!Array.isArray(samples) || samples.length === 0) {
    throw new Error('fitPersonal needs a non-empty list of {predictions, label} samples.');
  }
  return samples.map((sample, i) => {
    if (!sample || typeof sample !== 'object') throw new Error(`sample ${i} is not an object.`);
    const label = CLASSES.indexOf(sample.label);
    if (label < 0) throw new Error(`sample ${i}: unknown label "${sample.label}".`);
    return { logp: probabilityVector(sample.predictions, `sample ${i}`).map(safeLog), label };
  });
}

function safeLog(p) {
  return Math.log(Math.max(p, FIT.floor));
}

function adjusted(logp, bias) {
  const z = logp.map((v, c) => v + bias[c]);
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Class-balanced loss and its gradient (each labelled class weighs the same in total). */
function lossAndGradient(rows, weights, bias, penalty) {
  const grad = bias.map((b) => 2 * penalty * b);
  let loss = bias.reduce((a, b) => a + penalty * b * b, 0);
  for (const { logp, label } of rows) {
    const q = adjusted(logp, bias);
    const w = weights[label];
    loss -= w * Math.log(Math.max(q[label], 1e-300));
    for (let c = 0; c < q.length; c += 1) grad[c] += w * (q[c] - (c === label ? 1 : 0));
  }
  return { loss, grad };
}

/** Which frames the adjustment names correctly: mean recall over the labelled classes. */
function meanRecall(rows, bias) {
  const hits = new Map();
  for (const { logp, label } of rows) {
    const q = adjusted(logp, bias);
    const top = q.indexOf(Math.max(...q));
    const [n, k] = hits.get(label) || [0, 0];
    hits.set(label, [n + 1, k + (top === label ? 1 : 0)]);
  }
  let total = 0;
  for (const [n, k] of hits.values()) total += k / n;
  return total / hits.size;
}

/** Projected gradient descent with Nesterov momentum: convex, 8 parameters, deterministic. */
function descend(rows, weights, present, { penalty, bound, steps }) {
  // The loss's curvature is at most 1/2 per unit of weight (weights sum to 1) plus the penalty.
  const rate = 1 / (0.5 + 2 * penalty);
  let bias = CLASSES.map(() => 0);
  let previous = bias;
  for (let t = 1; t <= steps; t += 1) {
    const momentum = (t - 1) / (t + 2);
    const look = bias.map((b, c) => b + momentum * (b - previous[c]));
    const { grad } = lossAndGradient(rows, weights, look, penalty);
    previous = bias;
    bias = look.map((b, c) => (present[c] ? Math.min(bound, Math.max(-bound, b - rate * grad[c])) : 0));
  }
  return bias;
}

const round = (x, digits = 6) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * samples: [{predictions: {Anger: p, ... all 8}, label: 'Anger'}, ...] (the model's raw answers
 * for frames whose true expression is `label`). Returns a JSON-serialisable calibration.
 */
export function fitPersonal(samples, options = {}) {
  const settings = { ...FIT, ...options };
  const rows = checkSamples(samples);
  const counts = CLASSES.map((_, c) => rows.filter((r) => r.label === c).length);
  const present = counts.map((n) => n > 0);
  const classes = present.filter(Boolean).length;
  const weights = counts.map((n) => (n ? 1 / (n * classes) : 0));
  const zero = CLASSES.map(() => 0);
  const before = meanRecall(rows, zero);
  let bias = zero;
  let reason = null;
  if (classes >= 2) {
    const restricted = rows.map(({ logp, label }) => ({
      logp: logp.map((v, c) => (present[c] ? v : ABSENT)), label,
    }));
    bias = descend(restricted, weights, present, settings);
  } else {
    reason = 'Calibrating needs frames of two expressions or more; none is applied yet.';
  }
  let after = meanRecall(rows, bias);
  if (after < before) {
    // Never worse than the model as it is on the person's own frames.
    reason = 'The adjustment named fewer of your calibration frames correctly than the model '
      + 'alone, so none is applied. Try capturing clearer expressions.';
    bias = zero;
    after = before;
  }
  return {
    kind: 'class-bias',
    version: 1,
    classes: [...CLASSES],
    bias: Object.fromEntries(CLASSES.map((name, c) => [name, round(bias[c])])),
    counts: Object.fromEntries(CLASSES.map((name, c) => [name, counts[c]])),
    frames: { before: round(before, 4), after: round(after, 4) },
    identity: bias.every((b) => b === 0),
    reason,
    penalty: settings.penalty,
    bound: settings.bound,
  };
}

/** Checks a calibration (one fitted here, or a file someone imports). */
export function checkCalibration(calibration) {
  if (!calibration || typeof calibration !== 'object' || calibration.kind !== 'class-bias') {
    throw new Error('Not a calibration: expected {kind: "class-bias", bias: {...}}.');
  }
  const { bias } = calibration;
  if (!bias || typeof bias !== 'object') throw new Error('The calibration has no bias values.');
  for (const name of Object.keys(bias)) {
    if (!CLASSES.includes(name)) throw new Error(`The calibration names an unknown class "${name}".`);
  }
  const bound = Number.isFinite(calibration.bound) ? calibration.bound : FIT.bound;
  return CLASSES.map((name) => {
    const b = bias[name] ?? 0;
    if (typeof b !== 'number' || !Number.isFinite(b) || Math.abs(b) > bound + 1e-9) {
      throw new Error(`The calibration's value for ${name} is not a number within ±${bound}.`);
    }
    return b;
  });
}

/** The adjusted {class: p}, summing to 1 (a null calibration leaves them as they are). */
export function applyPersonal(calibration, predictions) {
  const p = probabilityVector(predictions);
  const bias = calibration ? checkCalibration(calibration) : CLASSES.map(() => 0);
  const scaled = p.map((v, c) => v * Math.exp(bias[c]));
  const sum = scaled.reduce((a, b) => a + b, 0);
  return Object.fromEntries(CLASSES.map((name, c) => [name, scaled[c] / sum]));
}
