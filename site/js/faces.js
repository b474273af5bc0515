// Face detection (tracking.js, Viola-Jones) on a downscaled copy of a frame, and face crops.

export const MAX_FACES = 3;
export const CROP_SIZE = 96;

// tracking.js's options. Measured on a 320x240 frame: a 1.5 initial scale finds faces down to
// 30 px; 4 finds none. The live view's own values are in live.js (measured on scenes).
export const TRACKER_OPTIONS = { initialScale: 1.5, stepSize: 1.5, edgesDensity: 0.1, scaleFactor: 1.25 };

/** Runs tracking.js on the page itself: the fallback when a worker cannot start. */
class InPageTracker {
  constructor(options) {
    const { tracking } = window;
    if (!tracking || !tracking.ObjectTracker || !tracking.ViolaJones.classifiers.face) {
      throw new Error('tracking.js did not load (vendor/tracking-min.js, vendor/face-min.js).');
    }
    this.tracker = new tracking.ObjectTracker('face');
    this.tracker.setInitialScale(options.initialScale);
    this.tracker.setStepSize(options.stepSize);
    this.tracker.setEdgesDensity(options.edgesDensity);
    this.tracker.setScaleFactor(options.scaleFactor);
    this.found = [];
    this.tracker.on('track', (event) => {
      this.found = event.data;
    });
  }

  run(imageData) {
    this.found = [];
    this.tracker.track(imageData.data, imageData.width, imageData.height); // emits synchronously
    return Promise.resolve(this.found);
  }
}

/** Runs tracking.js in a worker (js/detect-worker.js), so the page stays responsive. */
class WorkerTracker {
  constructor(options, onFailure) {
    this.options = options;
    this.worker = new Worker(new URL('./detect-worker.js', import.meta.url));
    this.pending = new Map();
    this.nextId = 1;
    this.worker.addEventListener('message', (event) => {
      const { id, boxes, error } = event.data;
      const job = this.pending.get(id);
      if (!job) return;
      this.pending.delete(id);
      if (error) job.reject(new Error(error));
      else job.resolve(boxes);
    });
    this.worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.worker.terminate();
      const err = new Error('The face-detection worker failed to start.');
      for (const job of this.pending.values()) job.reject(err);
      this.pending.clear();
      onFailure(err);
    });
  }

  run(imageData) {
    const id = this.nextId++;
    const { buffer } = imageData.data;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(
        { id, buffer, width: imageData.width, height: imageData.height, options: this.options },
        [buffer],
      );
    });
  }
}

/**
 * Finds faces in a video, image or canvas. Detection runs on a copy at most `width` pixels
 * wide (in a worker where possible); boxes come back in the source's own pixels, largest
 * first, at most `limit`. Each box carries `total`: how many detector windows agreed on it.
 */
export class FaceDetector {
  constructor({ width = 320, options = TRACKER_OPTIONS } = {}) {
    this.width = width;
    this.options = { ...TRACKER_OPTIONS, ...options };
    this.canvas = document.createElement('canvas');
    this.context = this.canvas.getContext('2d', { willReadFrequently: true });
    try {
      this.engine = new WorkerTracker(this.options, () => this.fallBack());
    } catch {
      this.engine = new InPageTracker(this.options);
    }
  }

  fallBack() {
    try {
      this.engine = new InPageTracker(this.options);
    } catch {
      this.engine = null;
    }
  }

  async detect(source, sourceWidth, sourceHeight, { limit = MAX_FACES } = {}) {
    const scale = Math.min(1, this.width / sourceWidth);
    const w = Math.max(1, Math.round(sourceWidth * scale));
    const h = Math.max(1, Math.round(sourceHeight * scale));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.context.drawImage(source, 0, 0, w, h);
    const imageData = this.context.getImageData(0, 0, w, h);
    if (!this.engine) throw new Error('Face detection is not available in this browser.');
    let found;
    try {
      found = await this.engine.run(imageData);
    } catch (err) {
      if (!(this.engine instanceof InPageTracker)) {
        this.fallBack();
        if (this.engine) found = await this.engine.run(this.context.getImageData(0, 0, w, h));
      }
      if (!found) throw err;
    }
    const boxes = found.map((r) => ({
      x: r.x / scale, y: r.y / scale, width: r.width / scale, height: r.height / scale,
      total: r.total || 1,
    }));
    return dropNested(boxes)
      .sort((a, b) => b.width * b.height - a.width * a.height)
      .slice(0, limit);
  }
}

/** Intersection over union of two boxes. */
export function iou(a, b) {
  const x1 = Math.max(a.x, b.x);
  const y1 = Math.max(a.y, b.y);
  const x2 = Math.min(a.x + a.width, b.x + b.width);
  const y2 = Math.min(a.y + a.height, b.y + b.height);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

// Viola-Jones sometimes reports a small box inside a face's box as well: keep the larger one.
function dropNested(boxes) {
  const sorted = [...boxes].sort((a, b) => b.width * b.height - a.width * a.height);
  const kept = [];
  for (const box of sorted) {
    const inside = kept.some((k) => {
      const cx = box.x + box.width / 2;
      const cy = box.y + box.height / 2;
      return cx > k.x && cx < k.x + k.width && cy > k.y && cy < k.y + k.height;
    });
    if (!inside) kept.push(box);
  }
  return kept;
}

/**
 * A square around the box, `margin` of its side added on every side, kept inside the frame.
 * Viola-Jones boxes run from the brows to the chin; FER-style crops show a little more.
 */
export function squareAround(box, frameWidth, frameHeight, margin = 0.12) {
  let side = Math.max(box.width, box.height) * (1 + 2 * margin);
  side = Math.min(side, frameWidth, frameHeight);
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const x = Math.min(Math.max(0, cx - side / 2), frameWidth - side);
  const y = Math.min(Math.max(0, cy - side / 2), frameHeight - side);
  return { x, y, width: side, height: side };
}

/** The centre square of a frame (what is classified when no face is found in a photo). */
export function centreSquare(frameWidth, frameHeight) {
  const side = Math.min(frameWidth, frameHeight);
  return { x: (frameWidth - side) / 2, y: (frameHeight - side) / 2, width: side, height: side };
}

/** Crops a face: square with a margin, CROP_SIZE pixels, grayscale; returns the canvas. */
export class FaceCropper {
  constructor(size = CROP_SIZE) {
    this.size = size;
    this.canvas = document.createElement('canvas');
  }

  crop(source, square, canvas = this.canvas) {
    const { size } = this;
    canvas.width = size;
    canvas.height = size;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    context.drawImage(source, square.x, square.y, square.width, square.height, 0, 0, size, size);
    const image = context.getImageData(0, 0, size, size);
    const p = image.data;
    for (let i = 0; i < p.length; i += 4) {
      const y = Math.round(0.299 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2]);
      p[i] = y;
      p[i + 1] = y;
      p[i + 2] = y;
    }
    context.putImageData(image, 0, 0);
    return canvas;
  }

  dataUrl(source, square) {
    return this.crop(source, square).toDataURL('image/jpeg', 0.9);
  }
}
