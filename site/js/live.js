// The live camera: getUserMedia -> tracking.js proposes boxes on a downscaled frame (in a
// worker) -> a crop per box, one request in flight per box (frames are dropped, never queued)
// -> the server (or, on this device, the same detector in a worker: ondevice.js) says whether
// the crop holds a face and where -> only verified faces are shown, counted and smoothed
// (tracks.js).

import { classify, describe } from './api.js';
import { FaceCropper, FaceDetector, squareAround } from './faces.js';
import { percent } from './bars.js';
import { RateMeter } from './smooth.js';
import { SendRate } from './rate.js';
import { readCheck, setPace, Tracks } from './tracks.js';

// tracking.js only has to propose new faces: verified ones follow the server's box between
// its runs. Measured on tests/browser/scenes.py (python -m tests.browser.recall): 480 px and an
// initial scale of 1.25 find the 60 px faces a 320 px copy misses.
export const DETECT_EVERY_MS = 150;
export const DETECT_SETTLED_MS = 500; // every box judged: tracking.js only looks for newcomers
export const DETECTION = {
  width: 480,
  options: { initialScale: 1.25, stepSize: 1.5, edgesDensity: 0.1, scaleFactor: 1.25 },
};
const MIN_SEND_GAP_MS = 33; // a camera gives ~30 frames/s: no point asking twice per frame
export const CROP_MARGIN = 0.25; // context around the box, so the detector sees a whole face
export const STALE_AFTER_MS = 1000; // no answer for this long while asking: the result is paused

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

export class Live {
  constructor({ video, overlay, stage, hint, startButton, stopButton, status, stats, panel,
    alerts, backoff, onNoCamera, analyser = null, seen = null, personal = null }) {
    // personal: the person's calibration (calibration.js); it sees the main face's raw answers
    // and adjusts what is shown.
    Object.assign(this, { video, overlay, stage, hint, startButton, stopButton, status, stats,
      panel, alerts, backoff, onNoCamera, analyser, seen, personal });
    this.context = overlay.getContext('2d');
    this.cropper = new FaceCropper();
    this.detector = null;
    this.meter = new RateMeter();
    this.sendRate = new SendRate(); // the stack is sized for this cap (rate.js)
    this.tracks = new Tracks();
    this.failing = false; // the last request failed: what is shown is paused
    this.answeredAt = -Infinity;
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
      if (!this.detector) this.detector = new FaceDetector(DETECTION);
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
      this.answeredAt = performance.now();
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
    this.tracks.clear();
    this.failing = false;
    this.panel.paused(false);
    this.releaseCamera();
    this.context.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.stage.classList.remove('on');
    this.hint.textContent = 'Press Start to turn on your camera.';
    this.startButton.disabled = false;
    this.stopButton.disabled = true;
    this.alerts.clear('live');
    this.panel.idle('Camera off');
    if (this.seen) this.seen.clear();
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
    const every = this.tracks.settled() ? DETECT_SETTLED_MS : DETECT_EVERY_MS;
    if (!this.detecting && now - this.lastDetect >= every) this.detect(w, h, now);
    this.tracks.prune(now);
    this.sendDue(now, w, h);
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
        if (session !== this.session || !this.running) return;
        const at = performance.now();
        setPace(at - now);
        this.tracks.match(boxes, at);
        this.sendDue(at, w, h); // at once: on a slow device the next frame may come late
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

  /** Sends a crop for each box that is due, the one waiting longest first (the cap is shared). */
  sendDue(now, w, h) {
    const waiting = this.tracks.all.filter((t) => !t.inFlight).sort((a, b) => a.sentAt - b.sentAt);
    for (const face of waiting) this.maybeSend(face, now, w, h);
  }

  maybeSend(face, now, w, h) {
    if (!face.due(now, MIN_SEND_GAP_MS) || !this.backoff.ready(now)) return;
    // Requests to the server share one page-wide cap; on-device analysis sends nothing.
    const toServer = !(this.analyser && this.analyser.onDevice);
    if (toServer && !this.sendRate.take(now)) return;
    const square = squareAround(face.box, w, h, CROP_MARGIN);
    const controller = new AbortController();
    const session = this.session;
    face.inFlight = controller;
    face.sentAt = now;
    // The analyser (ondevice.js) sends the crop to the server or runs the on-device model.
    const keep = Boolean(this.seen && this.seen.open); // what the model saw, when it is shown
    const request = this.analyser
      ? this.analyser.classify(this.video, square, { cropper: this.cropper, signal: controller.signal, keep })
      : classify(this.cropper.dataUrl(this.video, square), { signal: controller.signal });
    request
      .then(({ predictions, face: check, cropSize, rtt, sent }) => {
        if (session !== this.session || !this.running) return;
        const at = performance.now();
        this.failing = false;
        this.answeredAt = at;
        // A crop without a face: its emotion is not shown (and the box may be dropped).
        // The check's box is in the crop's pixels: the cropper's on the server, the
        // region's own on this device (`cropSize`).
        const checked = readCheck(check, square, cropSize || this.cropper.size);
        const shown = this.personal ? this.personal.apply(predictions) : predictions;
        if (face.settle(checked, shown, at)) {
          this.meter.add(rtt);
          if (sent && face === this.mainFace()) this.seen.show({ sent, check, box: face.box });
          if (this.personal && face === this.mainFace()) this.personal.observe(predictions, at);
        }
        const wasBusy = this.busy;
        this.busy = false;
        if (this.backoff.succeed() || this.alerts.sources.has('live') || wasBusy) {
          this.alerts.clear('live');
          this.setStatus(wasBusy ? 'Camera on.' : 'Connected again. Camera on.');
        }
      })
      .catch((err) => {
        if (err && err.name === 'AbortError') return;
        if (session !== this.session || !this.running) return;
        this.failing = true;
        if (this.backoff.ready()) this.backoff.fail();
        if (err && err.busy) {
          // Throttled or a full queue (429, 503, 504): expected under load, not an error.
          this.busy = true;
          this.setStatus('Busy, retrying…');
          return;
        }
        const retryAt = performance.now() + this.backoff.remaining();
        this.alerts.set('live', `${describe(err)} The live view will retry on its own.`, retryAt);
      })
      .finally(() => {
        if (face.inFlight === controller) face.inFlight = null;
        // The next crop goes out as soon as this answer is in, from the newest frame.
        if (session === this.session && this.running && this.tracks.all.includes(face)) {
          const { videoWidth, videoHeight } = this.video;
          if (videoWidth) this.sendDue(performance.now(), videoWidth, videoHeight);
        }
      });
  }

  mainFace() {
    return this.tracks.main();
  }

  /** Requests stopped succeeding (an error, or no answer for a while): results are paused. */
  isStale(now) {
    const asking = this.tracks.all.some((t) => t.inFlight);
    return this.failing || (asking && now - this.answeredAt > STALE_AFTER_MS);
  }

  draw(width, now = performance.now()) {
    const ctx = this.context;
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    const main = this.mainFace();
    const faces = this.tracks.faces().sort((a, b) => (b === main) - (a === main));
    const stale = this.isStale(now);
    const font = Math.max(14, Math.round(width / 28));
    ctx.font = `600 ${font}px system-ui, sans-serif`;
    ctx.textBaseline = 'bottom';
    ctx.globalAlpha = stale ? 0.45 : 1;
    for (const face of faces) {
      const { y, width: bw, height: bh } = face.box;
      const x = this.mirrored ? width - face.box.x - bw : face.box.x;
      ctx.lineWidth = face === main ? 4 : 2;
      ctx.strokeStyle = face.colour;
      ctx.strokeRect(x, y, bw, bh);
      const ranked = face.smoother.ranked();
      let label = ranked.length ? `${ranked[0][0]} ${percent(ranked[0][1])}` : '…';
      if (stale) label += ' (paused)';
      const tw = ctx.measureText(label).width + 12;
      const ty = y > font + 8 ? y - 2 : y + bh + font + 8;
      ctx.fillStyle = 'rgba(10, 12, 16, 0.8)';
      ctx.fillRect(x - 2, ty - font - 6, tw, font + 8);
      ctx.fillStyle = face.colour;
      ctx.fillText(label, x + 4, ty);
    }
    ctx.globalAlpha = 1;
    // What is drawn, for tests and tools: verified boxes in the video's pixels, main first.
    const described = JSON.stringify(faces.map((f) => ({
      x: Math.round(f.box.x), y: Math.round(f.box.y),
      width: Math.round(f.box.width), height: Math.round(f.box.height),
      top: f.smoother.top(),
    })));
    if (this.overlay.dataset.faces !== described) this.overlay.dataset.faces = described;
  }

  updatePanel(now) {
    const main = this.mainFace();
    this.panel.paused(this.isStale(now));
    if (main && main.classified) {
      const shown = `${main.id}:${main.smoother.version}`;
      if (shown !== this.shown) {
        this.shown = shown;
        this.panel.show(main.smoother.ranked(), now);
      }
    } else {
      this.shown = '';
      this.panel.idle('No face in view');
      if (this.seen && this.seen.shown) this.seen.clear('No face in view.');
    }
    if (now - this.lastStats >= 250) {
      this.lastStats = now;
      this.stats.show({
        rtt: this.meter.rtt(),
        rate: this.meter.rate(now),
        count: this.meter.count,
        faces: this.tracks.faces().length,
      });
    }
  }
}
