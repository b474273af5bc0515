// A photo instead of the camera: the server finds every face (POST /faces) and reads each
// one; boxes are drawn on the photo, with a result card per face. In on-device mode
// (ondevice.js) nothing may leave the device: the same detector and model run in a worker.

import { ApiError, classifyPhoto, describe } from './api.js';
import { Bars, percent } from './bars.js';
import { squareAround } from './faces.js';
import { MAX_UPLOAD_BYTES, PHOTO_SEND_SIDE } from './limits.js';

const DISPLAY_WIDTH = 960;
const COLOURS = ['#ffd166', '#4cc9f0', '#f4978e', '#95d5b2', '#cdb4db', '#f9c74f'];
const THUMB = 96;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The photo as /faces takes it: always a JPEG copy, its longer side no more than what the
 * server detects at (it would shrink a larger one anyway), so it stays far under the limit.
 */
function photoBody(image) {
  const w = image.naturalWidth;
  const h = image.naturalHeight;
  const scale = Math.min(1, PHOTO_SEND_SIDE / Math.max(w, h));
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(w * scale));
  canvas.height = Math.max(1, Math.round(h * scale));
  canvas.getContext('2d').drawImage(image, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => {
      if (!blob) reject(new Error('This photo could not be prepared for sending.'));
      else if (blob.size > MAX_UPLOAD_BYTES) reject(new Error('This photo is too large to send.'));
      else resolve(blob);
    }, 'image/jpeg', 0.9);
  });
}

/** A square colour thumbnail of one face, for its result card. */
function thumbnailOf(image, box, w, h) {
  const square = squareAround(box, w, h);
  const canvas = document.createElement('canvas');
  canvas.width = THUMB;
  canvas.height = THUMB;
  canvas.getContext('2d').drawImage(
    image, square.x, square.y, square.width, square.height, 0, 0, THUMB, THUMB,
  );
  return canvas;
}

function loadImage(file) {
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.src = url;
  return image.decode().then(
    () => {
      URL.revokeObjectURL(url);
      return image;
    },
    () => {
      URL.revokeObjectURL(url);
      throw new Error('This file could not be read as an image.');
    },
  );
}

export class Upload {
  constructor({ input, dropzone, status, canvas, results, alerts, backoff, analyser = null,
    adjust = (predictions) => predictions }) {
    // adjust: the person's calibration, only when they ticked "apply my calibration" (a photo
    // may show other people).
    Object.assign(this, { input, dropzone, status, canvas, results, alerts, backoff, analyser,
      adjust });
    this.job = 0;
    input.addEventListener('change', () => {
      if (input.files && input.files[0]) this.analyse(input.files[0]);
    });
    dropzone.addEventListener('dragenter', (e) => this.dragOver(e));
    dropzone.addEventListener('dragover', (e) => this.dragOver(e));
    dropzone.addEventListener('dragleave', () => dropzone.classList.remove('dragging'));
    dropzone.addEventListener('drop', (e) => {
      e.preventDefault();
      dropzone.classList.remove('dragging');
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (file) this.analyse(file);
    });
    // A photo dropped next to the zone must not make the browser leave the page.
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());
  }

  dragOver(e) {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    this.dropzone.classList.add('dragging');
  }

  setStatus(text, warning = false) {
    this.status.textContent = text;
    this.status.classList.toggle('warning', warning);
  }

  async analyse(file) {
    const job = ++this.job;
    this.results.replaceChildren();
    this.canvas.hidden = true;
    if (file.type && !file.type.startsWith('image/')) {
      this.setStatus(`“${file.name}” is not an image.`, true);
      return;
    }
    this.setStatus('Looking for faces in the photo…');
    let image;
    try {
      image = await loadImage(file);
    } catch (err) {
      this.setStatus(err.message, true);
      return;
    }
    if (job !== this.job) return;
    if (this.analyser && this.analyser.onDevice) await this.analyseOnDevice(file, image, job);
    else await this.analyseOnServer(file, image, job);
  }

  /** POST /faces on this device (ondevice.js): the same detector and defaults, nothing sent. */
  async analyseOnDevice(file, image, job) {
    const w = image.naturalWidth;
    const h = image.naturalHeight;
    let answer;
    try {
      answer = await this.analyser.findFaces(file);
    } catch (err) {
      if (job !== this.job) return;
      this.drawPhoto(image, w, h, [], []);
      this.setStatus(`The photo could not be analysed: ${describe(err)} Choose it again to retry.`, true);
      return;
    }
    if (job !== this.job) return;
    this.showFaces(image, w, h, answer, 'as found on this device');
  }

  /** The server finds and reads every face: one request for the whole photo. */
  async analyseOnServer(file, image, job) {
    const w = image.naturalWidth;
    const h = image.naturalHeight;
    let answer;
    try {
      const body = await photoBody(image);
      answer = await this.retrying(() => classifyPhoto(body), job);
    } catch (err) {
      if (job !== this.job) return;
      this.drawPhoto(image, w, h, [], []);
      const why = err instanceof ApiError ? describe(err) : err.message;
      this.setStatus(`The photo could not be analysed: ${why} Choose it again to retry.`, true);
      return;
    }
    if (job !== this.job) return;
    this.showFaces(image, w, h, answer, 'as the server found it');
  }

  /** /faces's answer (from the server or this device): a box and a card per face. */
  showFaces(image, w, h, answer, shown) {
    // Boxes come in the pixels of the image analysed (upright); the page shows it upright too.
    const sx = w / answer.image.width;
    const sy = h / answer.image.height;
    const boxes = answer.faces.map(({ box }) => ({
      x: box.x * sx, y: box.y * sy, width: box.width * sx, height: box.height * sy,
    }));
    const found = boxes.length;
    if (!found) {
      // No face: say so and show no emotion.
      this.drawPhoto(image, w, h, [], []);
      this.setStatus('No face was found in this photo, so no emotion is shown.', true);
      return;
    }
    this.drawPhoto(image, w, h, boxes, answer.faces);
    boxes.forEach((box, i) => {
      const thumbnail = thumbnailOf(image, box, w, h);
      this.addResult(i, found, thumbnail, answer.faces[i].predictions, shown);
    });
    this.setStatus(`Found ${found} face${found > 1 ? 's' : ''} in the photo.`);
  }

  /** `request()` with the shared backoff; a refusal of the image itself (4xx) is final. */
  async retrying(request, job, attempts = 5) {
    for (let attempt = 1; ; attempt++) {
      const wait = this.backoff.remaining();
      if (wait > 0) await sleep(wait);
      if (job !== this.job) throw new Error('superseded');
      try {
        const result = await request();
        this.backoff.succeed();
        this.alerts.clear('upload');
        return result;
      } catch (err) {
        const refused = err instanceof ApiError && err.status >= 400 && err.status < 500
          && !err.busy;
        if (refused) throw err;
        if (this.backoff.ready()) this.backoff.fail();
        const last = attempt >= attempts;
        const retryAt = last ? null : performance.now() + this.backoff.remaining();
        const next = last ? ' Choose the photo again to retry.' : ' Retrying on its own.';
        this.alerts.set('upload', `${describe(err)}${next}`, retryAt);
        if (last) throw err;
      }
    }
  }

  drawPhoto(image, w, h, boxes, results) {
    const scale = Math.min(1, DISPLAY_WIDTH / w);
    const canvas = this.canvas;
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    const font = Math.max(14, Math.round(canvas.width / 40));
    ctx.font = `600 ${font}px system-ui, sans-serif`;
    ctx.textBaseline = 'bottom';
    boxes.forEach((box, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const x = box.x * scale;
      const y = box.y * scale;
      ctx.lineWidth = 3;
      ctx.strokeStyle = colour;
      ctx.strokeRect(x, y, box.width * scale, box.height * scale);
      const top = results[i]
        && Object.entries(this.adjust(results[i].predictions)).sort((a, b) => b[1] - a[1])[0];
      const label = `${i + 1}${top ? ` ${top[0]} ${percent(top[1])}` : ''}`;
      const tw = ctx.measureText(label).width + 12;
      const ty = y > font + 8 ? y - 2 : y + box.height * scale + font + 8;
      const tx = Math.max(0, Math.min(x - 2, canvas.width - tw)); // keep the label on the photo
      ctx.fillStyle = 'rgba(10, 12, 16, 0.8)';
      ctx.fillRect(tx, ty - font - 6, tw, font + 8);
      ctx.fillStyle = colour;
      ctx.fillText(label, tx + 6, ty);
    });
    canvas.hidden = false;
    const n = results.length;
    canvas.setAttribute('aria-label', boxes.length && n
      ? `The photo, with ${boxes.length} marked region${boxes.length > 1 ? 's' : ''}`
      : 'The photo');
  }

  addResult(i, found, thumbnail, predictions, shown = 'as sent to the model') {
    const ranked = Object.entries(this.adjust(predictions)).sort((a, b) => b[1] - a[1]);
    const card = document.createElement('article');
    card.className = 'face-result';
    const heading = document.createElement('h3');
    const title = found ? `Face ${i + 1}` : 'Centre of the photo';
    heading.textContent = `${title}: ${ranked[0][0]}`;
    heading.id = `upload-face-${i + 1}`;
    card.setAttribute('aria-labelledby', heading.id);
    thumbnail.className = 'face-thumb';
    thumbnail.setAttribute('role', 'img');
    thumbnail.setAttribute('aria-label', `${title}, ${shown}`);
    const list = document.createElement('ol');
    list.className = 'bars compact';
    list.id = `upload-bars-${i + 1}`;
    list.setAttribute('aria-label', `Probability of each emotion, ${title.toLowerCase()}`);
    const body = document.createElement('div');
    body.className = 'face-result-body';
    body.append(heading, list);
    card.append(thumbnail, body);
    this.results.append(card);
    new Bars(list).show(ranked);
  }
}
