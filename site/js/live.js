// The live camera: getUserMedia -> tracking.js on a downscaled frame -> up to three faces ->
// one request in flight per face (frames are dropped, never queued) -> smoothed results.

import { classify, describe } from './api.js';
import { FaceCropper, FaceDetector, iou, MAX_FACES, squareAround } from './faces.js';
import { percent } from './bars.js';
import { RateMeter, Smoother } from './smooth.js';

const DETECT_EVERY_MS = 66; // ~15 detections/s on a 320 px wide copy of the frame
const MIN_SEND_GAP_MS = 33; // a camera gives ~30 frames/s: no point asking twice per frame
const FACE_STALE_MS = 250; // a face not seen for this long is not classified...
const FACE_GONE_MS = 700; // ...and for this long is forgotten
const BOX_SMOOTHING = 0.5; // weight of a new detection in the drawn box
const COLOURS = ['#ffd166', '#4cc9f0', '#f4978e'];

export function cameraProblem(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Camera permission was denied, so the live view cannot start.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') {
    return 'No camera was found on this device.';
  }
  if (name === 'NotReadableError' || name === 'AbortError') {
    return 'The camera could not start; another app may be using it.';
  }
  return 'The camera could not be opened.';
}

let nextId = 1;

class TrackedFace {
  constructor(box, now) {
    this.id = nextId++;
    this.box = { ...box };
    this.seenAt = now;
    this.sentAt = -Infinity;
    this.inFlight = null; // the AbortController of the request in flight
    this.smoother = new Smoother();
    this.colour = COLOURS[0];
  }

  update(box, now) {
    const a = BOX_SMOOTHING;
    for (const k of ['x', 'y', 'width', 'height']) {
      this.box[k] += a * (box[k] - this.box[k]);
    }
    this.seenAt = now;
  }

  get area() {
    return this.box.width * this.box.height;
  }
}

export class Live {
  constructor({ video, overlay, stage, hint, startButton, stopButton, status, stats, panel,
    alerts, backoff, onNoCamera }) {
    Object.assign(this, { video, overlay, stage, hint, startButton, stopButton, status, stats,
      panel, alerts, backoff, onNoCamera });
    this.context = overlay.getContext('2d');
    this.cropper = new FaceCropper();
    this.detector = null;
    this.meter = new RateMeter();
    this.faces = [];
    this.stream = null;
    this.running = false;
    this.session = 0;
    this.frame = 0;
    this.lastDetect = -Infinity;
    this.lastStats = -Infinity;
    this.loop = this.loop.bind(this);
    startButton.addEventListener('click', () => this.start());
    stopButton.addEventListener('click', () => this.stop());
  }

  async start() {
    if (this.running || this.starting) return;
    this.starting = true;
    this.startButton.disabled = true;
    this.setStatus('Asking for the camera…');
    try {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        const why = window.isSecureContext
          ? 'This browser cannot open a camera.'
          : 'The camera needs a secure page (HTTPS or localhost).';
        this.noCamera(why);
        return;
      }
      if (!this.detector) this.detector = new FaceDetector({ width: 320 });
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          audio: false,
          video: { facingMode: 'user', width: { ideal: 640 }, height: { ideal: 480 } },
        });
      } catch (err) {
        this.noCamera(cameraProblem(err));
        return;
      }
      this.stream = stream;
      const [track] = stream.getVideoTracks();
      const facing = track && track.getSettings ? track.getSettings().facingMode : undefined;
      this.mirrored = facing !== 'environment';
      this.video.classList.toggle('mirrored', this.mirrored);
      if (track) track.addEventListener('ended', () => this.stop('The camera stopped.'));
      this.video.srcObject = stream;
      await this.waitForVideo();
      this.running = true;
      this.session += 1;
      this.stage.classList.add('on');
      this.hint.textContent = '';
      this.stopButton.disabled = false;
      this.setStatus('Camera on.');
      this.meter.reset();
      this.frame = requestAnimationFrame(this.loop);
    } catch (err) {
      this.releaseCamera();
      this.startButton.disabled = false;
      this.setStatus(`The live view could not start: ${err.message}`, true);
    } finally {
      this.starting = false;
    }
  }

  async waitForVideo() {
    const { video } = this;
    if (video.readyState < video.HAVE_METADATA) {
      await new Promise((resolve) => video.addEventListener('loadedmetadata', resolve, { once: true }));
    }
    try {
      await video.play();
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
    }
    const w = video.videoWidth;
    const h = video.videoHeight;
    this.overlay.width = w;
    this.overlay.height = h;
    this.stage.style.aspectRatio = `${w} / ${h}`;
  }

  noCamera(message) {
    this.releaseCamera();
    this.startButton.disabled = false;
    this.setStatus(`${message} You can analyse a photo instead.`, true);
    this.onNoCamera(message);
  }

  stop(message = 'Camera off.') {
    const wasRunning = this.running;
    this.running = false;
    cancelAnimationFrame(this.frame);
    for (const face of this.faces) {
      if (face.inFlight) face.inFlight.abort();
    }
    this.faces = [];
    this.releaseCamera();
    this.context.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.stage.classList.remove('on');
    this.hint.textContent = 'Press Start to turn on your camera.';
    this.startButton.disabled = false;
    this.stopButton.disabled = true;
    this.alerts.clear('live');
    this.panel.idle('Camera off');
    this.shown = '';
    this.meter.reset();
    this.stats.show({ faces: 0, rate: 0 });
    if (wasRunning) this.setStatus(message);
  }

  releaseCamera() {
    if (this.stream) {
      for (const track of this.stream.getTracks()) track.stop();
    }
    this.stream = null;
    this.video.srcObject = null;
  }

  setStatus(text, warning = false) {
    this.status.textContent = text;
    this.status.classList.toggle('warning', warning);
  }

  loop(now) {
    if (!this.running) return;
    this.frame = requestAnimationFrame(this.loop);
    const { video } = this;
    if (video.readyState < video.HAVE_CURRENT_DATA || !video.videoWidth) return;
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (this.overlay.width !== w || this.overlay.height !== h) {
      this.overlay.width = w;
      this.overlay.height = h;
      this.stage.style.aspectRatio = `${w} / ${h}`;
    }
    if (!this.detecting && now - this.lastDetect >= DETECT_EVERY_MS) this.detect(w, h, now);
    this.faces = this.faces.filter((f) => {
      const gone = now - f.seenAt > FACE_GONE_MS;
      if (gone && f.inFlight) f.inFlight.abort();
      return !gone;
    });
    for (const face of this.faces) this.maybeSend(face, now, w, h);
    this.draw(w);
    this.updatePanel(now);
    this.alerts.tick(now);
  }

  detect(w, h, now) {
    const session = this.session;
    this.lastDetect = now;
    this.detecting = true;
    this.detector.detect(this.video, w, h)
      .then((boxes) => {
        if (session === this.session && this.running) this.match(boxes, performance.now());
      })
      .catch((err) => {
        if (session !== this.session || !this.running) return;
        this.stop();
        this.setStatus(`Face detection stopped working: ${err.message}`, true);
      })
      .finally(() => {
        this.detecting = false;
      });
  }

  /** Pairs this frame's boxes with the faces already followed (greedy, by overlap). */
  match(boxes, now) {
    const free = new Set(this.faces);
    for (const box of boxes) {
      let best = null;
      let bestScore = 0.15;
      for (const face of free) {
        const score = iou(face.box, box);
        if (score > bestScore) {
          best = face;
          bestScore = score;
        }
      }
      if (best) {
        best.update(box, now);
        free.delete(best);
      } else if (this.faces.length < MAX_FACES) {
        const face = new TrackedFace(box, now);
        face.colour = COLOURS.find((c) => !this.faces.some((f) => f.colour === c)) || COLOURS[0];
        this.faces.push(face);
      }
    }
  }

  maybeSend(face, now, w, h) {
    if (face.inFlight || now - face.seenAt > FACE_STALE_MS) return;
    if (now - face.sentAt < MIN_SEND_GAP_MS || !this.backoff.ready(now)) return;
    const dataUrl = this.cropper.dataUrl(this.video, squareAround(face.box, w, h));
    const controller = new AbortController();
    const session = this.session;
    face.inFlight = controller;
    face.sentAt = now;
    classify(dataUrl, { signal: controller.signal })
      .then(({ predictions, rtt }) => {
        if (session !== this.session || !this.running) return;
        face.smoother.add(predictions);
        face.classified = true;
        this.meter.add(rtt);
        if (this.backoff.succeed() || this.alerts.sources.has('live')) {
          this.alerts.clear('live');
          this.setStatus('Connected again. Camera on.');
        }
      })
      .catch((err) => {
        if (err && err.name === 'AbortError') return;
        if (session !== this.session || !this.running) return;
        if (this.backoff.ready()) this.backoff.fail();
        const retryAt = performance.now() + this.backoff.remaining();
        this.alerts.set('live', `${describe(err)} The live view will retry on its own.`, retryAt);
      })
      .finally(() => {
        if (face.inFlight === controller) face.inFlight = null;
        // The next crop goes out as soon as this answer is in, from the newest frame.
        if (session === this.session && this.running && this.faces.includes(face)) {
          const { videoWidth, videoHeight } = this.video;
          if (videoWidth) this.maybeSend(face, performance.now(), videoWidth, videoHeight);
        }
      });
  }

  mainFace() {
    let main = null;
    for (const f of this.faces) {
      if (!main || f.area > main.area) main = f;
    }
    return main;
  }

  draw(width) {
    const ctx = this.context;
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    const main = this.mainFace();
    const font = Math.max(14, Math.round(width / 28));
    ctx.font = `600 ${font}px system-ui, sans-serif`;
    ctx.textBaseline = 'bottom';
    for (const face of this.faces) {
      const { y, width: bw, height: bh } = face.box;
      const x = this.mirrored ? width - face.box.x - bw : face.box.x;
      ctx.lineWidth = face === main ? 4 : 2;
      ctx.strokeStyle = face.colour;
      ctx.strokeRect(x, y, bw, bh);
      const ranked = face.smoother.ranked();
      const label = ranked.length ? `${ranked[0][0]} ${percent(ranked[0][1])}` : '…';
      const tw = ctx.measureText(label).width + 12;
      const ty = y > font + 8 ? y - 2 : y + bh + font + 8;
      ctx.fillStyle = 'rgba(10, 12, 16, 0.8)';
      ctx.fillRect(x - 2, ty - font - 6, tw, font + 8);
      ctx.fillStyle = face.colour;
      ctx.fillText(label, x + 4, ty);
    }
  }

  updatePanel(now) {
    const main = this.mainFace();
    if (main && main.classified) {
      const shown = `${main.id}:${main.smoother.version}`;
      if (shown !== this.shown) {
        this.shown = shown;
        this.panel.show(main.smoother.ranked(), now);
      }
    } else {
      this.shown = '';
      this.panel.idle(main ? 'Face found, reading it…' : 'No face in view');
    }
    if (now - this.lastStats >= 250) {
      this.lastStats = now;
      this.stats.show({
        rtt: this.meter.rtt(),
        rate: this.meter.rate(now),
        count: this.meter.count,
        faces: this.faces.length,
      });
    }
  }
}
