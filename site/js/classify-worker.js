// On-device analysis: the device's classifier (a student distilled like the server's model)
// and the face detector in onnxruntime-web (WebAssembly), off the page's thread. Messages in:
// {type: 'load', manifest, detector} (the two manifests' URLs), then {id, buffer, width,
// height} (RGBA pixels) with type 'classify' (one face crop, read as it is), 'check' (a crop
// that should hold one face: /face's check, then the face framed as the card says, then
// classified) or 'faces' (a whole photo: what POST /faces does). Out: progress, ready,
// result, error.
// Both files are fetched once, checked and cached (model-file.js), behind one progress bar.

import * as ort from '../vendor/ort/ort.wasm.min.js';
import { probabilities, toInput } from './preprocess.js';
import { modelFiles, readManifest } from './model-file.js';
import { Detector } from './detector.js';
import { cropRegion, framingOf, keeps, pixelBox, region as framed } from './framing.js';
import { clippedBox } from './retinaface.js';

let session = null;
let card = null;
let detector = null;

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

async function load(manifestUrl, detectorUrl) {
  const started = performance.now();
  const [manifest, detectorCard] = await Promise.all([
    readManifest(manifestUrl), readManifest(detectorUrl),
  ]);
  const [model, detectorFile] = await modelFiles([
    { manifest, url: manifestUrl, cache: 'emotion-model' },
    { manifest: detectorCard, url: detectorUrl, cache: 'emotion-detector' },
  ], (progress) => post({ type: 'progress', ...progress }));
  const bytes = manifest.bytes + detectorCard.bytes;
  post({ type: 'progress', received: bytes, total: bytes, compiling: true });

  ort.env.wasm.wasmPaths = { wasm: new URL('../vendor/ort/ort-wasm-simd-threaded.wasm', import.meta.url).href };
  // Threads need SharedArrayBuffer, so a cross-origin-isolated page (COOP + COEP headers).
  ort.env.wasm.numThreads = self.crossOriginIsolated
    ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1))
    : 1;
  ort.env.wasm.proxy = false;
  session = await ort.InferenceSession.create(model.bytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    // Fold the int8 weights' DequantizeLinear into float weights once, here, not per frame.
    extra: { session: { disable_quant_qdq: '1' } },
  });
  const detectorSession = await ort.InferenceSession.create(detectorFile.bytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  card = manifest;
  detector = new Detector(ort, detectorSession, detectorCard);
  // One inference of each now, so the first face does not pay for lazy allocation.
  const side = card.input_size;
  await run(new Uint8ClampedArray(side * side * 4).fill(128), side, side);
  await detector.detect(new Uint8ClampedArray(64 * 64 * 4).fill(128), 64, 64, { maxSide: 64 });
  post({
    type: 'ready',
    label: manifest.label,
    detector: detectorCard.label,
    inputSize: card.input_size,
    cached: model.cached && detectorFile.cached,
    bytes,
    threads: ort.env.wasm.numThreads,
    ms: performance.now() - started,
  });
}

async function run(rgba, width, height) {
  const side = card.input_size;
  const input = new ort.Tensor('float32', toInput(rgba, width, height, card), [1, 1, side, side]);
  const output = await session.run({ [session.inputNames[0]]: input });
  const logits = output[session.outputNames[0]].data;
  const probs = probabilities(logits, card.temperature);
  return Object.fromEntries(card.classes.map((name, i) => [name, probs[i]]));
}

/** /face on this device: where the crop's face is (checked at `side`, as the server does),
 * and its expression, read from the face framed as the card says, or from the crop as sent
 * when no face is found or the face fills it (refine_crop). `face` is /face's block. */
async function check(rgba, width, height, { side }) {
  const [face = null] = await detector.detect(rgba, width, height, { maxSide: side, upscale: true });
  const framing = framingOf(card);
  const kept = keeps(face, width, height, framing);
  const [x1, y1, x2, y2] = kept ? [0, 0, width, height] : pixelBox(framed(face, framing));
  const crop = kept ? { data: rgba, width, height } : cropRegion(rgba, width, height, [x1, y1, x2, y2]);
  const predictions = await run(crop.data, crop.width, crop.height);
  const region = { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }; // what the model read
  const block = face
    ? { found: true, score: face.score, box: clippedBox(face, width, height), region }
    : { found: false, score: 0, box: region, region };
  return { predictions, face: block };
}

/** POST /faces on this device: every face in a photo, each framed and classified. */
async function photo(rgba, width, height, { maxSide, minSize, maxFaces }) {
  const found = await detector.detect(rgba, width, height, { maxSide, minSize });
  const framing = framingOf(card);
  const faces = [];
  for (const face of found.slice(0, maxFaces)) {
    const crop = cropRegion(rgba, width, height, framed(face, framing));
    faces.push({
      box: clippedBox(face, width, height), // as /faces answers it
      detection: { x: face.x, y: face.y, width: face.width, height: face.height },
      score: face.score,
      predictions: await run(crop.data, crop.width, crop.height),
    });
  }
  return { faces };
}

const JOBS = {
  classify: async (rgba, width, height) => ({ predictions: await run(rgba, width, height) }),
  check,
  faces: photo,
};

let queue = Promise.resolve();

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === 'load') {
    load(message.manifest, message.detector)
      .catch((err) => post({ type: 'error', error: String(err.message || err) }));
    return;
  }
  const job = JOBS[message.type];
  if (!job) return;
  const { id, buffer, width, height, options = {} } = message;
  // session.run is not re-entrant: one job at a time, in order.
  queue = queue.then(async () => {
    const started = performance.now();
    try {
      if (!session || !detector) throw new Error('The on-device model is not loaded yet.');
      const answer = await job(new Uint8ClampedArray(buffer), width, height, options);
      post({ type: 'result', id, ...answer, ms: performance.now() - started });
    } catch (err) {
      post({ type: 'result', id, error: String(err.message || err) });
    }
  });
};
