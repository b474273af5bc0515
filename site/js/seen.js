// "What the model saw": the main face's input to the classifier, at its real size and enlarged,
// with the face box, so a person can see why a result is off (too dark, a cut chin, a turned
// head). Rebuilt in the page from what it already holds, with no extra request; nothing is
// kept once the camera stops.
// - On the server: the crop the page sent, decoded as the server decodes it, the region of it
//   the server's `face` block says the classifier read, then the model card's preprocessing
//   (preprocess.js: Pillow's grayscale, centre square and bilinear resize, bit for bit).
// - On this device: the pixels the page gave the on-device model, the region of them its
//   copy of the server's detector chose (the same `face` block), through the same steps.

import { centreSquare, resizeBilinear, toGray } from './preprocess.js';

const BOX = '#ffd166';
const REGION = '#4cc9f0';

/**
 * The region's pixels of a gray image, as framing.py's crop_region cuts them: past the image's
 * edges its edge pixels repeat; a region wholly outside it is its nearest corner's one pixel.
 */
export function cutRegion(gray, width, height, region) {
  const out = new Uint8Array(region.width * region.height);
  const right = region.x + region.width;
  const bottom = region.y + region.height;
  if (Math.max(region.x, 0) >= Math.min(right, width) || Math.max(region.y, 0) >= Math.min(bottom, height)) {
    const x = Math.min(Math.max(region.x, 0), width - 1);
    const y = Math.min(Math.max(region.y, 0), height - 1);
    return out.fill(gray[y * width + x]);
  }
  for (let y = 0; y < region.height; y += 1) {
    const sy = Math.min(Math.max(region.y + y, 0), height - 1) * width;
    for (let x = 0; x < region.width; x += 1) {
      out[y * region.width + x] = gray[sy + Math.min(Math.max(region.x + x, 0), width - 1)];
    }
  }
  return out;
}

/**
 * The classifier's 8-bit input (before normalisation) from a gray image and the region it
 * read: preprocess.py's to_model_image. Also where the region's centre square lies, to map
 * boxes into the input.
 */
export function modelInput(gray, width, height, region, side) {
  const pixels = cutRegion(gray, width, height, region);
  const square = centreSquare(pixels, region.width, region.height);
  return {
    pixels: resizeBilinear(square.pixels, square.side, side),
    side,
    origin: {
      x: region.x + Math.floor((region.width - square.side) / 2),
      y: region.y + Math.floor((region.height - square.side) / 2),
      side: square.side,
    },
  };
}

function decode(dataUrl) {
  const image = new Image();
  image.src = dataUrl; // a data: URL, which the page's CSP allows for images (not for fetch)
  return image.decode().then(() => image);
}

function grayCanvas(canvas, pixels, width, height) {
  canvas.width = width;
  canvas.height = height;
  const image = new ImageData(width, height);
  for (let i = 0; i < pixels.length; i += 1) {
    image.data.set([pixels[i], pixels[i], pixels[i], 255], i * 4);
  }
  canvas.getContext('2d').putImageData(image, 0, 0);
}

/** Strokes `boxes` ({x, y, width, height} in the pixels of a side x side image) on `marks`. */
function drawMarks(marks, side, boxes) {
  const css = marks.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  marks.width = Math.max(1, Math.round(css.width * scale));
  marks.height = Math.max(1, Math.round(css.height * scale));
  const ctx = marks.getContext('2d');
  ctx.clearRect(0, 0, marks.width, marks.height);
  const k = marks.width / side;
  for (const { box, colour, dashed } of boxes) {
    if (!box) continue;
    ctx.lineWidth = 2 * scale;
    ctx.strokeStyle = colour;
    ctx.setLineDash(dashed ? [6 * scale, 4 * scale] : []);
    ctx.strokeRect(box.x * k, box.y * k, box.width * k, box.height * k);
  }
}

export class ModelView {
  constructor({ toggle, panel, note, input, zoom, zoomMarks, sent, sentMarks, analyser = null }) {
    Object.assign(this, { toggle, panel, note, input, zoom, zoomMarks, sent, sentMarks, analyser });
    this.inputSize = { server: 0 }; // the server's card (GET /health); the device's: analyser
    this.shown = null;
    this.drawing = 0;
    toggle.addEventListener('click', () => this.setOpen(!this.open));
  }

  get open() {
    return this.toggle.getAttribute('aria-expanded') === 'true';
  }

  setOpen(on) {
    this.toggle.setAttribute('aria-expanded', String(on));
    this.panel.hidden = !on;
    if (!on) this.clear();
  }

  say(text) {
    if (this.note.textContent !== text) this.note.textContent = text;
  }

  /** Nothing to show (no face, camera off): the pictures go. */
  clear(text = 'Start the camera: what the model receives for the main face shows here.') {
    this.drawing += 1;
    this.say(text);
    if (this.shown === null) return;
    this.shown = null;
    this.panel.dataset.state = 'empty';
    for (const canvas of [this.input, this.zoom, this.zoomMarks, this.sent, this.sentMarks]) {
      canvas.width = 0;
      canvas.height = 0;
    }
  }

  /**
   * One answer for the main face. sent: {dataUrl} (to the server) or {imageData, x, y} (on this
   * device); check: the server's `face` block; box: the tracked box in the frame's pixels.
   */
  async show({ sent, check = null, square = null, box = null }) {
    if (!this.open || !sent) return;
    const job = ++this.drawing;
    let gray;
    let width;
    let height;
    let region;
    let faceBox = null;
    let side;
    let colour = null;
    if (sent.dataUrl) {
      side = this.inputSize.server;
      let image;
      try {
        image = await decode(sent.dataUrl);
      } catch {
        if (job === this.drawing) this.say('This crop could not be shown.');
        return;
      }
      if (job !== this.drawing) return;
      width = image.naturalWidth;
      height = image.naturalHeight;
      const canvas = document.createElement('canvas');
      canvas.width = width;
      canvas.height = height;
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(image, 0, 0);
      gray = toGray(ctx.getImageData(0, 0, width, height).data, width, height);
      region = check && check.region;
      if (!region) {
        this.say('This server does not say which part of the crop its model read.');
        return;
      }
      if (check.found) faceBox = check.box;
      const all = region.x === 0 && region.y === 0 && region.width === width
        && region.height === height;
      const found = `The server found the face (score ${(check.score || 0).toFixed(2)})`;
      if (!check.found) this.say('The server found no face in this crop, so the model was given all of it.');
      else if (all) this.say(`${found}; it fills the crop, so the model was given all of it.`);
      else this.say(`${found} and gave the model the dashed square, in grayscale.`);
    } else {
      side = (this.analyser && this.analyser.inputSize) || 0;
      const { imageData, x, y } = sent;
      ({ width, height } = imageData);
      colour = imageData;
      gray = toGray(imageData.data, width, height);
      region = { x: 0, y: 0, width, height };
      if (check && check.region) {
        // The page's copy of the server's detector checked the crop, as /face does.
        region = check.region;
        if (check.found) faceBox = check.box;
        const all = region.x === 0 && region.y === 0 && region.width === width
          && region.height === height;
        const found = `On this device: the detector found the face (score ${(check.score || 0).toFixed(2)})`;
        if (!check.found) this.say('On this device: no face was found in this crop, so the model was given all of it.');
        else if (all) this.say(`${found}; it fills the crop, so the model was given all of it.`);
        else this.say(`${found} and gave the model the dashed square, in grayscale.`);
      } else {
        if (box) faceBox = { x: box.x - x, y: box.y - y, width: box.width, height: box.height };
        this.say('On this device: the model was given this part of the frame, in grayscale.');
      }
    }
    if (!side) {
      this.say('The model’s input size is not known yet.');
      return;
    }
    const seen = modelInput(gray, width, height, region, side);
    grayCanvas(this.input, seen.pixels, side, side);
    grayCanvas(this.zoom, seen.pixels, side, side);
    if (colour) {
      this.sent.width = width;
      this.sent.height = height;
      this.sent.getContext('2d').putImageData(colour, 0, 0);
    } else {
      grayCanvas(this.sent, gray, width, height);
    }
    const k = side / seen.origin.side;
    const inInput = faceBox && {
      x: (faceBox.x - seen.origin.x) * k,
      y: (faceBox.y - seen.origin.y) * k,
      width: faceBox.width * k,
      height: faceBox.height * k,
    };
    const read = { x: seen.origin.x, y: seen.origin.y, width: seen.origin.side, height: seen.origin.side };
    // The sent crop's marks: drawn in its own pixels (the overlay is scaled to its side).
    this.sentMarks.style.aspectRatio = `${width} / ${height}`;
    drawMarks(this.zoomMarks, side, [{ box: inInput, colour: BOX }]);
    drawMarks(this.sentMarks, width, [
      { box: faceBox, colour: BOX },
      { box: read, colour: REGION, dashed: true },
    ]);
    this.shown = { side, width, height };
    this.panel.dataset.state = 'shown';
    this.input.setAttribute('aria-label', `The model’s input, ${side} by ${side} pixels, real size`);
    this.zoom.setAttribute('aria-label', `The model’s input, enlarged${faceBox ? ', with the face box' : ''}`);
  }
}
