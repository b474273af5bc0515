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
//
// A bias fitted on a few frames can fit their noise: before it is applied it is cross-validated
// on the frames themselves (the j-th frame of every expression held out in fold j % FOLDS, the
// bias refitted on the rest) and scaled by the share of SCALES that names the most held-out
// frames correctly (ties: the smaller); 0 is the identity.

export const CLASSES = [
  'Anger', 'Disgust', 'Surprise', 'Sadness', 'Happiness', 'Neutral', 'Contempt', 'Fear',
];

// The penalty: chosen on simulated people whose later frames are of the same faces, as the
// page's are (python -m bench.personal --frames video; docs/calibration.md).
export const FIT = Object.freeze({
  penalty: 0.005, bound: 4, steps: 400, tolerance: 1e-9, floor: 1e-6,
});

export const FOLDS = 5;
export const SCALES = Object.freeze([0, 0.25, 0.5, 0.75, 1]);

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

/**
 * Projected gradient descent with Nesterov momentum on the class-balanced loss (each labelled
 * class weighs the same in total) plus the penalty: convex, 8 parameters, deterministic.
 * Flat typed arrays: the cross-validation runs it six times, inside the page's 50 ms.
 */
function descend(rows, weights, present, { penalty, bound, steps, tolerance }) {
  const K = CLASSES.length;
  const n = rows.length;
  const logp = new Float64Array(n * K);
  const label = new Int32Array(n);
  const weight = new Float64Array(n);
  rows.forEach((row, i) => {
    logp.set(row.logp, i * K);
    label[i] = row.label;
    weight[i] = weights[row.label];
  });
  // The loss's curvature is at most 1/2 per unit of weight (weights sum to 1) plus the penalty.
  const rate = 1 / (0.5 + 2 * penalty);
  let bias = new Float64Array(K);
  let previous = new Float64Array(K);
  const look = new Float64Array(K);
  const grad = new Float64Array(K);
  const q = new Float64Array(K);
  for (let t = 1; t <= steps; t += 1) {
    const momentum = (t - 1) / (t + 2);
    for (let c = 0; c < K; c += 1) {
      look[c] = bias[c] + momentum * (bias[c] - previous[c]);
      grad[c] = 2 * penalty * look[c];
    }
    for (let i = 0; i < n; i += 1) {
      const row = i * K;
      let top = -Infinity;
      for (let c = 0; c < K; c += 1) {
        q[c] = logp[row + c] + look[c];
        if (q[c] > top) top = q[c];
      }
      let sum = 0;
      for (let c = 0; c < K; c += 1) {
        q[c] = Math.exp(q[c] - top);
        sum += q[c];
      }
      for (let c = 0; c < K; c += 1) grad[c] += weight[i] * (q[c] / sum);
      grad[label[i]] -= weight[i];
    }
    const next = previous;
    previous = bias;
    let moved = 0;
    for (let c = 0; c < K; c += 1) {
      next[c] = present[c] ? Math.min(bound, Math.max(-bound, look[c] - rate * grad[c])) : 0;
      moved = Math.max(moved, Math.abs(next[c] - bias[c]));
    }
    bias = next;
    if (moved < tolerance) break; // converged: later steps would not change the 6 decimals kept
  }
  return Array.from(bias);
}

/** The full-strength bias for these rows (at least two labelled classes). */
function fitBias(rows, settings) {
  const counts = CLASSES.map((_, c) => rows.filter((r) => r.label === c).length);
  const present = counts.map((n) => n > 0);
  const classes = present.filter(Boolean).length;
  const weights = counts.map((n) => (n ? 1 / (n * classes) : 0));
  const restricted = rows.map(({ logp, label }) => ({
    logp: logp.map((v, c) => (present[c] ? v : ABSENT)), label,
  }));
  return descend(restricted, weights, present, settings);
}

function top(logp, bias) {
  const q = adjusted(logp, bias);
  return q.indexOf(Math.max(...q));
}

/** Per scale in SCALES: how many frames the scaled bias, fitted without them, names right. */
function heldOutHits(rows, settings) {
  const seen = CLASSES.map(() => 0);
  const fold = rows.map(({ label }) => {
    const j = seen[label];
    seen[label] += 1;
    return j % FOLDS;
  });
  const hits = SCALES.map(() => 0);
  for (let j = 0; j <= Math.max(...fold); j += 1) {
    const train = rows.filter((_, i) => fold[i] !== j);
    if (new Set(train.map((r) => r.label)).size < 2) continue;
    const bias = fitBias(train, settings);
    rows.forEach((row, i) => {
      if (fold[i] !== j) return;
      SCALES.forEach((scale, s) => {
        if (top(row.logp, bias.map((b) => scale * b)) === row.label) hits[s] += 1;
      });
    });
  }
  return hits;
}

/** The share of the bias that cross-validates best (1 when there is nothing to hold out). */
function shrinkage(rows, counts, settings) {
  if (Math.max(...counts) < 2) return 1;
  const hits = heldOutHits(rows, settings);
  return SCALES[hits.indexOf(Math.max(...hits))]; // the first: ties go to the smaller
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
  const classes = counts.filter((n) => n > 0).length;
  const zero = CLASSES.map(() => 0);
  const before = meanRecall(rows, zero);
  let bias = zero;
  let reason = null;
  let scale = 0;
  if (classes < 2) {
    reason = 'Calibrating needs frames of two expressions or more; none is applied yet.';
  } else {
    scale = shrinkage(rows, counts, settings);
    if (scale === 0) {
      reason = 'Frames held out of the fit were named no better with the adjustment than '
        + 'without it, so none is applied. Try capturing clearer expressions.';
    } else {
      bias = fitBias(rows, settings).map((b) => scale * b);
    }
  }
  let after = meanRecall(rows, bias);
  if (after < before) {
    // Never worse than the model as it is on the person's own frames.
    reason = 'The adjustment named fewer of your calibration frames correctly than the model '
      + 'alone, so none is applied. Try capturing clearer expressions.';
    bias = zero;
    after = before;
    scale = 0;
  }
  return {
    kind: 'class-bias',
    version: 1,
    classes: [...CLASSES],
    bias: Object.fromEntries(CLASSES.map((name, c) => [name, round(bias[c])])),
    counts: Object.fromEntries(CLASSES.map((name, c) => [name, counts[c]])),
    frames: { before: round(before, 4), after: round(after, 4) },
    identity: bias.every((b) => b === 0),
    scale,
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
