// A personal adjustment of the model's answers, learned from a few labelled frames of one
// person (the page's "Calibrate to my face"). Pure: no DOM, no network; runs in the page and
// in node. The same fit exists in Python for deployments (emotion/recalibration.py) and the
// two are tested against each other.
//
// The adjustment is q ∝ p · exp(b + M·u), u = log p / LOG_RANGE (the log-probabilities scaled
// into [-1, 0]), of one of two kinds, both fitted by minimising the class-balanced negative
// log-likelihood of the labels among the labelled classes (it only reorders the expressions it
// has frames of, and never learns that an expression nobody showed never happens) plus a
// penalty pulling toward the identity, every value kept within ±bound; classes without frames
// keep 0:
// - 'class-bias': M = 0, one bias per class (`penalty · |b|²`);
// - 'class-map': also M, 8 x 8 (`mapPenalty · |M|²`), so that an expression the model reads as
//   another can be told apart by the rest of its answer, which no bias can.
//
// A fit on a few frames can fit their noise: before anything is applied both kinds are
// cross-validated on the frames themselves (the j-th frame of every expression held out in
// fold j % FOLDS, refitted on the rest), and the kind and the share of it (SCALES) that name the
// most held-out frames correctly are applied (the map only if it names mapMargin more than the
// bias; ties: the smaller share; 0 is the identity). The map is only tried where something can be held out.

export const CLASSES = [
  'Anger', 'Disgust', 'Surprise', 'Sadness', 'Happiness', 'Neutral', 'Contempt', 'Fear',
];

// The penalty: chosen on simulated people whose later frames are of the same faces, as the
// page's are (python -m bench.personal --frames video; docs/calibration.md).
export const FIT = Object.freeze({
  penalty: 0.005, mapPenalty: 0.0003, bound: 4, steps: 200, tolerance: 1e-9, floor: 1e-6,
  perClass: 10, mapMargin: 4,
});

export const LOG_RANGE = -Math.log(FIT.floor); // u = log p / LOG_RANGE lies in [-1, 0]

export const FOLDS = 5;

/**
 * At most `perClass` frames of each expression, evenly spaced through the ones given: 3 s of
 * capture are dozens of near-identical frames, and ten keep the fit within the page's 50 ms.
 */
function thinned(rows, perClass) {
  if (!perClass) return rows;
  return CLASSES.flatMap((_, c) => {
    const own = rows.filter((r) => r.label === c);
    if (own.length <= perClass) return own;
    return Array.from({ length: perClass }, (_, i) => own[Math.round((i * (own.length - 1)) / (perClass - 1))]);
  });
}
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

/** z = log p + b + M·u: the adjusted log-probabilities, unnormalised. */
function shifted(logp, { bias, map }) {
  const K = CLASSES.length;
  return logp.map((v, c) => {
    let z = v + bias[c];
    if (map) for (let j = 0; j < K; j += 1) z += map[c * K + j] * (logp[j] / LOG_RANGE);
    return z;
  });
}

function adjusted(logp, adjustment) {
  const z = shifted(logp, adjustment);
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

function topClass(logp, adjustment) {
  const z = shifted(logp, adjustment);
  return z.indexOf(Math.max(...z));
}

const IDENTITY = Object.freeze({ bias: CLASSES.map(() => 0), map: null });

function scaledBy(share, { bias, map }) {
  return { bias: bias.map((b) => share * b), map: map ? map.map((m) => share * m) : null };
}

/** Which frames the adjustment names correctly: mean recall over the labelled classes. */
function meanRecall(rows, adjustment) {
  const hits = new Map();
  for (const { logp, label } of rows) {
    const [n, k] = hits.get(label) || [0, 0];
    hits.set(label, [n + 1, k + (topClass(logp, adjustment) === label ? 1 : 0)]);
  }
  let total = 0;
  for (const [n, k] of hits.values()) total += k / n;
  return total / hits.size;
}

/**
 * Projected gradient descent with Nesterov momentum on the class-balanced loss (each labelled
 * class weighs the same in total) plus the penalties: convex, at most 72 values,
 * deterministic. Flat typed arrays: the cross-validation runs it a dozen times, inside the
 * page's 50 ms.
 */
function descend(rows, withMap, settings) {
  const { penalty, mapPenalty, bound, steps, tolerance } = settings;
  const K = CLASSES.length;
  const n = rows.length;
  const counts = CLASSES.map((_, c) => rows.filter((r) => r.label === c).length);
  const present = counts.map((m) => m > 0);
  const classes = present.filter(Boolean).length;
  const logp = new Float64Array(n * K);
  const u = new Float64Array(n * K);
  const label = new Int32Array(n);
  const weight = new Float64Array(n);
  let widest = 0;
  rows.forEach((row, i) => {
    let norm = 0;
    for (let c = 0; c < K; c += 1) {
      // A class without frames drops out of the likelihood: log-probability "minus infinity".
      logp[i * K + c] = present[c] ? row.logp[c] : ABSENT;
      u[i * K + c] = withMap ? row.logp[c] / LOG_RANGE : 0;
      norm += u[i * K + c] ** 2;
    }
    widest = Math.max(widest, norm);
    label[i] = row.label;
    weight[i] = 1 / (counts[row.label] * classes);
  });
  // The loss's curvature is at most 1/2 · (1 + |u|²) per unit of weight (weights sum to 1).
  const rate = 1 / (0.5 * (1 + widest) + 2 * Math.max(penalty, withMap ? mapPenalty : 0));
  const theta = descentSteps({
    logp, u, label, weight, present, withMap, rate, penalty, mapPenalty, bound, steps, tolerance,
  });
  return {
    bias: Array.from(theta.subarray(0, K)),
    map: withMap ? Array.from(theta.subarray(K)) : null,
  };
}

/**
 * The descent itself, apart from its set-up: V8 optimises this loop while it runs and would
 * throw that work away on reaching code it has not seen run yet (the set-up's return), once a
 * fit; alone it stays optimised from one fit to the next (3-4x faster over a calibration).
 */
function descentSteps({
  logp, u, label, weight, present, withMap, rate, penalty, mapPenalty, bound, steps, tolerance,
}) {
  const K = CLASSES.length;
  const P = K + K * K; // b, then M row by row
  // The values that move (a bias alone leaves M at 0): those of labelled classes.
  const active = withMap ? P : K;
  const free = new Uint8Array(P);
  for (let p = 0; p < active; p += 1) free[p] = present[p < K ? p : Math.floor((p - K) / K)] ? 1 : 0;
  let theta = new Float64Array(P);
  let previous = new Float64Array(P);
  const look = new Float64Array(P);
  const grad = new Float64Array(P);
  const q = new Float64Array(K);
  for (let t = 1; t <= steps; t += 1) {
    const momentum = (t - 1) / (t + 2);
    for (let p = 0; p < active; p += 1) {
      look[p] = theta[p] + momentum * (theta[p] - previous[p]);
      grad[p] = 2 * (p < K ? penalty : mapPenalty) * look[p];
    }
    if (withMap) mapGradient(logp, u, label, weight, look, grad, q);
    else biasGradient(logp, label, weight, look, grad, q);
    const next = previous;
    previous = theta;
    let moved = 0;
    for (let p = 0; p < active; p += 1) {
      next[p] = free[p] ? Math.min(bound, Math.max(-bound, look[p] - rate * grad[p])) : 0;
      moved = Math.max(moved, Math.abs(next[p] - theta[p]));
    }
    theta = next;
    if (moved < tolerance) break; // converged: later steps would not change the 6 decimals kept
  }
  return theta;
}

// The likelihood's gradient, added to grad at the point look; two loops, one per kind, each of
// which the browser compiles for its own case.
function biasGradient(logp, label, weight, look, grad, q) {
  const K = CLASSES.length;
  for (let i = 0; i < label.length; i += 1) {
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
    for (let c = 0; c < K; c += 1) grad[c] += weight[i] * (q[c] / sum - (c === label[i] ? 1 : 0));
  }
}

function mapGradient(logp, u, label, weight, look, grad, q) {
  const K = CLASSES.length;
  for (let i = 0; i < label.length; i += 1) {
    const row = i * K;
    let top = -Infinity;
    for (let c = 0; c < K; c += 1) {
      let z = logp[row + c] + look[c];
      const m = K + c * K;
      for (let j = 0; j < K; j += 1) z += look[m + j] * u[row + j];
      q[c] = z;
      if (z > top) top = z;
    }
    let sum = 0;
    for (let c = 0; c < K; c += 1) {
      q[c] = Math.exp(q[c] - top);
      sum += q[c];
    }
    for (let c = 0; c < K; c += 1) {
      const r = weight[i] * (q[c] / sum - (c === label[i] ? 1 : 0));
      grad[c] += r;
      const m = K + c * K;
      for (let j = 0; j < K; j += 1) grad[m + j] += r * u[row + j];
    }
  }
}

/** Per share in SCALES: how many frames the scaled fit, made without them, names right. */
function heldOutHits(rows, withMap, settings) {
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
    const fitted = descend(train, withMap, settings);
    const shares = SCALES.map((share) => scaledBy(share, fitted));
    rows.forEach((row, i) => {
      if (fold[i] !== j) return;
      shares.forEach((adjustment, s) => {
        if (topClass(row.logp, adjustment) === row.label) hits[s] += 1;
      });
    });
  }
  return hits;
}

/** [with the map?, the share] that cross-validates best (the whole bias with nothing to hold out). */
function choose(rows, counts, settings) {
  if (Math.max(...counts) < 2) return [false, 1];
  const byBias = heldOutHits(rows, false, settings);
  const byMap = heldOutHits(rows, true, settings);
  // The map only where it names mapMargin more held-out frames right than the bias: on faces
  // of other people (bench.personal's pessimistic case) it otherwise wins by noise.
  if (Math.max(...byMap) >= Math.max(...byBias) + settings.mapMargin) {
    return [true, SCALES[byMap.indexOf(Math.max(...byMap))]];
  }
  return [false, SCALES[byBias.indexOf(Math.max(...byBias))]]; // the first: the smaller
}

const round = (x, digits = 6) => Math.round(x * 10 ** digits) / 10 ** digits;

const byClass = (values) => Object.fromEntries(CLASSES.map((name, c) => [name, round(values[c])]));

/**
 * samples: [{predictions: {Anger: p, ... all 8}, label: 'Anger'}, ...] (the model's raw answers
 * for frames whose true expression is `label`). Returns a JSON-serialisable calibration.
 */
export function fitPersonal(samples, options = {}) {
  const settings = { ...FIT, ...options };
  const given = checkSamples(samples);
  const rows = thinned(given, settings.perClass);
  const counts = CLASSES.map((_, c) => rows.filter((r) => r.label === c).length);
  const classes = counts.filter((n) => n > 0).length;
  const before = meanRecall(rows, IDENTITY);
  let adjustment = IDENTITY;
  let reason = null;
  let scale = 0;
  if (classes < 2) {
    reason = 'Calibrating needs frames of two expressions or more; none is applied yet.';
  } else {
    let withMap;
    [withMap, scale] = choose(rows, counts, settings);
    if (scale === 0) {
      reason = 'Frames held out of the fit were named no better with the adjustment than '
        + 'without it, so none is applied. Try capturing clearer expressions.';
    } else {
      adjustment = scaledBy(scale, descend(rows, withMap, settings));
    }
  }
  let after = meanRecall(rows, adjustment);
  if (after < before) {
    // Never worse than the model as it is on the person's own frames.
    reason = 'The adjustment named fewer of your calibration frames correctly than the model '
      + 'alone, so none is applied. Try capturing clearer expressions.';
    adjustment = IDENTITY;
    after = before;
    scale = 0;
  }
  const K = CLASSES.length;
  const map = adjustment.map
    ? Object.fromEntries(CLASSES.map((name, c) => [name, byClass(adjustment.map.slice(c * K, (c + 1) * K))]))
    : null;
  return {
    kind: map ? 'class-map' : 'class-bias',
    version: 1,
    classes: [...CLASSES],
    bias: byClass(adjustment.bias),
    ...(map ? { map } : {}),
    // Frames given per expression (at most perClass of each entered the fit).
    counts: Object.fromEntries(CLASSES.map((name, c) => [name, given.filter((r) => r.label === c).length])),
    frames: { before: round(before, 4), after: round(after, 4) },
    identity: !map && adjustment.bias.every((b) => b === 0),
    scale,
    reason,
    penalty: settings.penalty,
    mapPenalty: settings.mapPenalty,
    bound: settings.bound,
  };
}

/**
 * Fits once on made-up frames and throws the result away, so that the browser has compiled the
 * fit before it fits a person's own frames: a page's first fit takes two to three times as long
 * as later ones (node bench/fit_time.mjs). The page runs it while the person poses.
 */
export function warmUpFit() {
  const samples = CLASSES.flatMap((label, c) => [0, 1, 2, 3].map((k) => {
    // Read as Neutral, the expression itself a little above the rest: both kinds get fitted.
    const z = CLASSES.map((name, j) => (name === 'Neutral' ? 2 : 0) + (j === c ? 1 : 0) + 0.1 * ((j * 3 + k) % 5));
    const e = z.map(Math.exp);
    const sum = e.reduce((a, b) => a + b, 0);
    return { label, predictions: Object.fromEntries(CLASSES.map((name, j) => [name, e[j] / sum])) };
  }));
  return fitPersonal(samples).kind;
}

function checkedValues(values, bound, where) {
  if (!values || typeof values !== 'object' || Array.isArray(values)) {
    throw new Error(`The calibration has no ${where} values.`);
  }
  for (const name of Object.keys(values)) {
    if (!CLASSES.includes(name)) throw new Error(`The calibration names an unknown class "${name}".`);
  }
  return CLASSES.map((name) => {
    const v = values[name] ?? 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > bound + 1e-9) {
      throw new Error(`The calibration's ${where} value for ${name} is not a number within ±${bound}.`);
    }
    return v;
  });
}

/** Checks a calibration (one fitted here, or a file someone imports): its {bias, map}. */
export function checkCalibration(calibration) {
  if (!calibration || typeof calibration !== 'object'
      || !['class-bias', 'class-map'].includes(calibration.kind)) {
    throw new Error('Not a calibration: expected {kind: "class-bias" or "class-map", bias: {...}}.');
  }
  const bound = Number.isFinite(calibration.bound) ? calibration.bound : FIT.bound;
  const bias = checkedValues(calibration.bias, bound, 'bias');
  if (calibration.kind === 'class-bias') return { bias, map: null };
  const { map } = calibration;
  if (!map || typeof map !== 'object' || Array.isArray(map)) {
    throw new Error('The calibration has no map values.');
  }
  for (const name of Object.keys(map)) {
    if (!CLASSES.includes(name)) throw new Error(`The calibration names an unknown class "${name}".`);
  }
  return { bias, map: CLASSES.flatMap((name) => checkedValues(map[name] ?? {}, bound, `map ${name}`)) };
}

/** The adjusted {class: p}, summing to 1 (a null calibration leaves them as they are). */
export function applyPersonal(calibration, predictions) {
  const p = probabilityVector(predictions);
  const adjustment = calibration ? checkCalibration(calibration) : IDENTITY;
  const z = shifted(p.map(safeLog), adjustment).map((v, c) => v - safeLog(p[c]));
  const top = Math.max(...z);
  const scaled = p.map((v, c) => v * Math.exp(z[c] - top));
  const sum = scaled.reduce((a, b) => a + b, 0);
  return Object.fromEntries(CLASSES.map((name, c) => [name, scaled[c] / sum]));
}
