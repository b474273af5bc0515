// On-device classification: the compact model in onnxruntime-web (WebAssembly), off the
// page's thread. Messages in: {type: 'load', manifest} then {type: 'classify', id, buffer,
// width, height} (RGBA pixels of one face crop). Out: progress, ready, result, error.
// The model file is fetched once, checked against its SHA-256, and kept in Cache Storage
// under its content-hashed name, so a later visit (or an offline one) reads it from disk.

import * as ort from '../vendor/ort/ort.wasm.min.js';
import { probabilities, toInput } from './preprocess.js';

const CACHE = 'emotion-model';
let session = null;
let card = null;

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

async function sha256(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The whole body, reporting progress as it arrives. */
async function download(url, expected) {
  const response = await fetch(url, { cache: 'no-cache' });
  if (!response.ok) throw new Error(`The model could not be downloaded (${response.status}).`);
  const total = Number(response.headers.get('Content-Length')) || expected;
  const reader = response.body.getReader();
  const bytes = new Uint8Array(total);
  let received = 0;
  let chunks = null; // only if the server sent more than announced
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!chunks && received + value.length <= total) bytes.set(value, received);
    else (chunks ||= [bytes.slice(0, received)]).push(value);
    received += value.length;
    post({ type: 'progress', received, total });
  }
  if (!chunks) return bytes.subarray(0, received);
  const all = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}

async function modelBytes(url, manifest) {
  const cache = self.caches ? await caches.open(CACHE).catch(() => null) : null;
  if (cache) {
    // Stored only after its checksum matched, under a name that holds that checksum.
    const hit = await cache.match(url);
    if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), cached: true };
  }
  const bytes = await download(url, manifest.bytes);
  if ((await sha256(bytes)) !== manifest.sha256) {
    throw new Error('The downloaded model is damaged (its checksum does not match).');
  }
  if (cache) {
    // Older models (other hashed names) are dropped: one copy on disk at a time.
    for (const old of await cache.keys()) if (old.url !== url) await cache.delete(old);
    const headers = { 'Content-Type': 'application/octet-stream' };
    await cache.put(url, new Response(bytes, { headers })).catch(() => {});
  }
  return { bytes, cached: false };
}

async function load(manifestUrl) {
  const started = performance.now();
  const response = await fetch(manifestUrl, { cache: 'no-cache' });
  if (!response.ok) throw new Error(`The model description could not be read (${response.status}).`);
  const manifest = await response.json();
  const url = new URL(manifest.file, manifestUrl).href;
  const { bytes, cached } = await modelBytes(url, manifest);
  post({ type: 'progress', received: bytes.length, total: bytes.length, compiling: true });

  ort.env.wasm.wasmPaths = { wasm: new URL('../vendor/ort/ort-wasm-simd-threaded.wasm', import.meta.url).href };
  // Threads need SharedArrayBuffer, so a cross-origin-isolated page (COOP + COEP headers).
  ort.env.wasm.numThreads = self.crossOriginIsolated
    ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1))
    : 1;
  ort.env.wasm.proxy = false;
  session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    // Fold the int8 weights' DequantizeLinear into float weights once, here, not per frame.
    extra: { session: { disable_quant_qdq: '1' } },
  });
  card = manifest;
  // One inference now, so the first face does not pay for lazy allocation.
  const side = card.input_size;
  await run(new Uint8ClampedArray(side * side * 4).fill(128), side, side);
  post({
    type: 'ready',
    label: manifest.label,
    inputSize: card.input_size,
    cached,
    bytes: manifest.bytes,
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

let queue = Promise.resolve();

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === 'load') {
    load(message.manifest).catch((err) => post({ type: 'error', error: String(err.message || err) }));
    return;
  }
  if (message.type === 'classify') {
    const { id, buffer, width, height } = message;
    // session.run is not re-entrant: one inference at a time, in order.
    queue = queue.then(async () => {
      const started = performance.now();
      try {
        if (!session) throw new Error('The on-device model is not loaded yet.');
        const predictions = await run(new Uint8ClampedArray(buffer), width, height);
        post({ type: 'result', id, predictions, ms: performance.now() - started });
      } catch (err) {
        post({ type: 'result', id, error: String(err.message || err) });
      }
    });
  }
};
