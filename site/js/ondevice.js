// Where faces are analysed: on the server (the default) or on this device, with the compact
// model and the server's face detector in a worker (js/classify-worker.js). The choice is
// remembered (localStorage). The live view asks `analyser.classify(...)` and gets the same
// answer shape ({predictions, face, rtt}: /face's) either way; photos on this device go to
// `analyser.findFaces(...)`, which answers as POST /faces does. In on-device mode no image
// leaves the page.

import { classify as classifyOnServer } from './api.js';
import { SERVICE } from './retinaface.js';

export const STORAGE_KEY = 'emotion-evaluator.analyse';
export const MANIFEST = 'models/compact.json';
export const DETECTOR_MANIFEST = 'models/detector.json';
const PRIVACY = {
  server: 'Your camera frames are analysed on the fly and never stored.',
  device: 'Faces are analysed on this device: no camera frame or photo leaves it.',
};

/** An error of the on-device path, worded for a person (api.describe shows it as is). */
export class OnDeviceError extends Error {
  constructor(message) {
    super(message);
    this.name = 'OnDeviceError';
    this.onDevice = true;
  }
}

function storedMode() {
  try {
    return localStorage.getItem(STORAGE_KEY) === 'device' ? 'device' : 'server';
  } catch {
    return 'server'; // storage blocked: the default
  }
}

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1);
}

/** The worker that holds the device's classifier (models/compact.json names the file). */
class DeviceModel {
  constructor(onProgress) {
    this.onProgress = onProgress;
    this.pending = new Map();
    this.nextId = 1;
    this.worker = new Worker(new URL('./classify-worker.js', import.meta.url), { type: 'module' });
    this.ready = new Promise((resolve, reject) => {
      this.worker.addEventListener('message', (event) => {
        const message = event.data;
        if (message.type === 'progress') this.onProgress(message);
        else if (message.type === 'ready') resolve(message);
        else if (message.type === 'error') reject(new OnDeviceError(message.error));
        else if (message.type === 'result') this.settle(message);
      });
      this.worker.addEventListener('error', (event) => {
        event.preventDefault();
        reject(new OnDeviceError('The on-device model could not start in this browser.'));
      });
    });
    this.ready.catch(() => this.fail('The on-device model is not available.'));
    this.worker.postMessage({
      type: 'load',
      manifest: new URL(MANIFEST, document.baseURI).href,
      detector: new URL(DETECTOR_MANIFEST, document.baseURI).href,
    });
  }

  settle({ id, error, type, ...answer }) {
    const job = this.pending.get(id);
    if (!job) return;
    this.pending.delete(id);
    if (error) job.reject(new OnDeviceError(`The on-device model failed: ${error}`));
    else job.resolve(answer);
  }

  fail(message) {
    for (const job of this.pending.values()) job.reject(new OnDeviceError(message));
    this.pending.clear();
  }

  /** A job for the worker ('classify', 'check' or 'faces') on these pixels (handed over). */
  run(imageData, type = 'classify', options = {}) {
    const id = this.nextId++;
    const { buffer } = imageData.data;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(
        { type, id, buffer, width: imageData.width, height: imageData.height, options },
        [buffer],
      );
    });
  }

  terminate() {
    this.worker.terminate();
    this.fail('The on-device model was stopped.');
  }
}

export class Analyser {
  constructor({ radios = [], status = null, progress = null, privacy = null, modelInfo = null }) {
    Object.assign(this, { radios, status, progress, privacy, modelInfo });
    this.mode = storedMode();
    this.model = null;
    this.label = '';
    this.canvas = document.createElement('canvas');
    this.context = this.canvas.getContext('2d', { willReadFrequently: true });
    for (const radio of radios) {
      radio.checked = radio.value === this.mode;
      radio.addEventListener('change', () => {
        if (radio.checked) this.setMode(radio.value);
      });
    }
    this.showMode();
    if (this.mode === 'device') this.load();
  }

  get onDevice() {
    return this.mode === 'device';
  }

  setMode(mode) {
    this.mode = mode === 'device' ? 'device' : 'server';
    try {
      localStorage.setItem(STORAGE_KEY, this.mode);
    } catch {
      // Not remembered, but still applied.
    }
    this.showMode();
    if (this.onDevice) this.load();
  }

  showMode() {
    document.body.dataset.analyse = this.mode;
    if (this.privacy) this.privacy.textContent = PRIVACY[this.mode];
    // Sentences that hold in one mode only (index.html: data-analyse-note="server|device").
    for (const note of document.querySelectorAll('[data-analyse-note]')) {
      note.hidden = note.dataset.analyseNote !== this.mode;
    }
    if (!this.onDevice) this.setStatus('Faces are sent to the server for analysis.');
    else if (this.model) this.model.ready.then((m) => this.showReady(m), () => {});
  }

  setStatus(text, { warning = false, state = '' } = {}) {
    if (!this.status) return;
    this.status.textContent = text;
    this.status.classList.toggle('warning', warning);
    this.status.dataset.state = state;
  }

  showProgress({ received, total, compiling }) {
    if (!this.onDevice) return;
    if (this.progress) {
      this.progress.hidden = false;
      this.progress.max = total || 1;
      this.progress.value = received;
    }
    this.setStatus(compiling
      ? 'Preparing the on-device model…'
      : `Downloading the on-device model: ${megabytes(received)} of ${megabytes(total)} MB…`,
    { state: 'loading' });
  }

  showReady({ label, cached, bytes, threads, inputSize }) {
    this.label = label;
    this.inputSize = inputSize; // what "What the model saw" (seen.js) resizes to
    if (this.status) this.status.dataset.threads = String(threads);
    if (this.progress) this.progress.hidden = true;
    if (this.modelInfo) this.modelInfo.dataset.device = label;
    if (!this.onDevice) return;
    const from = cached ? 'from this device\'s cache' : `${megabytes(bytes)} MB, downloaded once`;
    this.setStatus(`Ready: faces are analysed on this device (${label}, ${from}).`, {
      state: 'ready',
    });
  }

  /** Start the worker and the model download (once). */
  load() {
    if (!this.model) {
      this.setStatus('Loading the on-device model…', { state: 'loading' });
      this.model = new DeviceModel((p) => this.showProgress(p));
      this.model.ready.then(
        (m) => this.showReady(m),
        (err) => {
          if (this.progress) this.progress.hidden = true;
          this.setStatus(`${err.message} Choose “Analyse on the server” to go on.`, {
            warning: true, state: 'failed',
          });
          this.model.terminate();
          this.model = null;
        },
      );
    }
    return this.model.ready;
  }

  /** The pixels of `region` (source pixels, drawn 1:1, no resampling) as ImageData. */
  pixels(source, region, sourceWidth, sourceHeight) {
    const w = Math.max(1, Math.min(Math.round(region.width), sourceWidth));
    const h = Math.max(1, Math.min(Math.round(region.height), sourceHeight));
    const x = Math.min(Math.max(0, Math.round(region.x)), sourceWidth - w);
    const y = Math.min(Math.max(0, Math.round(region.y)), sourceHeight - h);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.context.drawImage(source, x, y, w, h, 0, 0, w, h);
    this.lastRegion = { x, y };
    return this.context.getImageData(0, 0, w, h);
  }

  /**
   * One face: `square` of `source` (a video, image, bitmap or canvas). On the server: the
   * cropper's small grayscale JPEG goes out as before. On this device: the region's own pixels
   * go to the worker, which checks it for a face as /face does (`face`: found, score, box and
   * the region the classifier read, in the crop's pixels, `cropSize` wide), frames that face
   * as the card says and preprocesses it exactly as the server would. With `check: false` the
   * region is classified as it is. keep: the answer also carries `sent`, what was classified
   * (seen.js shows it; nothing is stored).
   */
  async classify(source, square,
    { cropper, signal, sourceWidth, sourceHeight, keep, check = true } = {}) {
    if (!this.onDevice) {
      const dataUrl = cropper.dataUrl(source, square);
      const answer = await classifyOnServer(dataUrl, { signal });
      return keep ? { ...answer, sent: { dataUrl } } : answer;
    }
    const started = performance.now();
    await this.load();
    const w = sourceWidth || source.videoWidth || source.naturalWidth || source.width;
    const h = sourceHeight || source.videoHeight || source.naturalHeight || source.height;
    const pixels = this.pixels(source, square, w, h);
    const cropSize = pixels.width;
    // A copy: the worker takes the pixels' buffer.
    const copy = keep && new ImageData(new Uint8ClampedArray(pixels.data), pixels.width, pixels.height);
    const sent = copy && { imageData: copy, ...this.lastRegion };
    const answer = await this.model.run(pixels, check ? 'check' : 'classify',
      { side: SERVICE.cropSide });
    if (signal && signal.aborted) throw new DOMException('Aborted', 'AbortError');
    return { predictions: answer.predictions, face: answer.face, cropSize,
      rtt: performance.now() - started, ...(sent && { sent }) };
  }

  /**
   * POST /faces on this device: every face in a photo (a File or Blob), found by the server's
   * detector with the service's defaults, each framed and classified. The photo is decoded
   * upright (EXIF orientation applied, as the server's decode does) and without colour
   * management (Pillow ignores embedded profiles). Answers {faces: [{box, detection, score,
   * predictions}], image: {width, height}}, boxes in the upright photo's pixels.
   */
  async findFaces(photo, options = {}) {
    await this.load();
    let bitmap;
    try {
      bitmap = await createImageBitmap(photo, {
        imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none',
      });
    } catch {
      // The page's <img> shows what it could read of a truncated file; the whole is needed.
      throw new OnDeviceError('The image data is truncated or corrupt.');
    }
    const { width, height } = bitmap;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    context.fillStyle = '#fff'; // transparent pixels count as white, as decode.py has it
    context.fillRect(0, 0, width, height);
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    const pixels = context.getImageData(0, 0, width, height);
    canvas.width = canvas.height = 0; // let the large canvas go now
    const { faces } = await this.model.run(pixels, 'faces', {
      maxSide: SERVICE.photoSide, minSize: SERVICE.minSize, maxFaces: SERVICE.maxFaces, ...options,
    });
    return { faces, image: { width, height } };
  }
}
