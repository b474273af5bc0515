// The server's face detector around its network, in JavaScript: what function/emotion/detect.py
// does before and after ONNX Runtime (shrink or enlarge the image, pad, BGR minus the mean;
// anchors, SSD box decoding, greedy non-maximum suppression), read from the same card
// (models/face-detector.json, published as models/detector.json by tools/site_model.py).
// Pure functions, no DOM: the worker runs them, node tests them against detect.py.

import { coefficients } from './preprocess.js';

// The service's defaults, which on-device mode copies: POST /faces shrinks a photo to this
// longer side (settings.detect_side, EMOTION_DETECT_SIDE), keeps faces at least min_size px
// wide, at most max_faces of them; /face checks a crop at crop_detect_side. A test reads them
// against emotion.settings and emotion.app.
export const SERVICE = Object.freeze({ photoSide: 1024, minSize: 24, maxFaces: 20, cropSide: 160 });

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RGBA pixels -> RGB (transparent pixels over white, as decode.py does it). */
export function toRgb(rgba, width, height) {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    const a = rgba[i + 3];
    for (let c = 0; c < 3; c += 1) {
      const v = rgba[i + c];
      rgb[j + c] = a === 255 ? v : Math.round((v * a + 255 * (255 - a)) / 255);
    }
  }
  return { data: rgb, width, height };
}

/** Pillow's Image.reduce(k) on RGB: box averages in its fixed point; partial boxes at the
 * right and bottom edges average the pixels they hold. */
export function reduce(image, k) {
  const { data, width, height } = image;
  const ow = Math.ceil(width / k);
  const oh = Math.ceil(height / k);
  const out = new Uint8Array(ow * oh * 3);
  const sums = [0, 0, 0];
  for (let oy = 0; oy < oh; oy += 1) {
    const y0 = oy * k;
    const y1 = Math.min(y0 + k, height);
    for (let ox = 0; ox < ow; ox += 1) {
      const x0 = ox * k;
      const x1 = Math.min(x0 + k, width);
      const n = (y1 - y0) * (x1 - x0);
      sums[0] = sums[1] = sums[2] = Math.floor(n / 2); // Reduce.c's `amend`
      for (let y = y0; y < y1; y += 1) {
        for (let p = (y * width + x0) * 3, end = (y * width + x1) * 3; p < end; p += 3) {
          sums[0] += data[p];
          sums[1] += data[p + 1];
          sums[2] += data[p + 2];
        }
      }
      // Reduce.c divides by multiplying with a float32 reciprocal in 24-bit fixed point.
      const multiplier = Math.trunc(Math.fround(4294967296 / (256 * n)));
      const o = (oy * ow + ox) * 3;
      for (let c = 0; c < 3; c += 1) out[o + c] = Math.floor((sums[c] * multiplier) / 16777216);
    }
  }
  return { data: out, width: ow, height: oh };
}

/** Pillow's resize(size, NEAREST): source index floor((x + 0.5) * in / out). */
function nearestTable(inSize, outSize) {
  const step = inSize / outSize;
  const table = new Int32Array(outSize);
  let at = step * 0.5;
  for (let x = 0; x < outSize; x += 1) {
    table[x] = Math.min(inSize - 1, Math.trunc(at));
    at += step; // accumulated, as Geometry.c does
  }
  return table;
}

export function resizeNearest(image, width, height) {
  const xs = nearestTable(image.width, width);
  const ys = nearestTable(image.height, height);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y += 1) {
    const row = ys[y] * image.width;
    for (let x = 0; x < width; x += 1) {
      const from = (row + xs[x]) * 3;
      const to = (y * width + x) * 3;
      out[to] = image.data[from];
      out[to + 1] = image.data[from + 1];
      out[to + 2] = image.data[from + 2];
    }
  }
  return { data: out, width, height };
}

const ONE = 2 ** 22; // Pillow's fixed point for 8-bit images (preprocess.js)

function clip8(sum) {
  if (sum <= 0) return 0;
  if (sum >= ONE * 256) return 255;
  return Math.floor(sum / ONE);
}

/** Pillow's resize(size, BILINEAR) on RGB: horizontal pass, then vertical. */
export function resizeBilinear(image, width, height) {
  let { data, width: w, height: h } = image;
  if (w !== width) {
    const c = coefficients(w, width);
    const out = new Uint8Array(width * h * 3);
    for (let y = 0; y < h; y += 1) {
      for (let xx = 0; xx < width; xx += 1) {
        const xmin = c.bounds[xx * 2];
        const xmax = c.bounds[xx * 2 + 1];
        const k = xx * c.ksize;
        for (let ch = 0; ch < 3; ch += 1) {
          let sum = ONE / 2;
          for (let x = 0; x < xmax; x += 1) sum += data[(y * w + xmin + x) * 3 + ch] * c.fixed[k + x];
          out[(y * width + xx) * 3 + ch] = clip8(sum);
        }
      }
    }
    data = out;
    w = width;
  }
  if (h !== height) {
    const c = coefficients(h, height);
    const out = new Uint8Array(w * height * 3);
    for (let yy = 0; yy < height; yy += 1) {
      const ymin = c.bounds[yy * 2];
      const ymax = c.bounds[yy * 2 + 1];
      const k = yy * c.ksize;
      for (let x = 0; x < w * 3; x += 1) {
        let sum = ONE / 2;
        for (let y = 0; y < ymax; y += 1) sum += data[(ymin + y) * w * 3 + x] * c.fixed[k + y];
        out[yy * w * 3 + x] = clip8(sum);
      }
    }
    data = out;
    h = height;
  }
  return { data, width: w, height: h };
}

/** detect.shrink: to exactly (width, height), no larger: a box average by the whole factor,
 * then nearest-neighbour for the rest. */
export function shrink(image, width, height) {
  const factor = Math.min(Math.floor(image.width / width), Math.floor(image.height / height));
  let out = factor >= 2 ? reduce(image, factor) : image;
  if (out.width !== width || out.height !== height) out = resizeNearest(out, width, height);
  return out;
}

/** What the network sees: the image at the detection size, and the factor applied. */
export function detectionImage(image, maxSide, upscale = false) {
  let scale = maxSide / Math.max(image.width, image.height);
  if (!upscale) scale = Math.min(1, scale);
  if (scale === 1) return { image, scale };
  const w = Math.max(1, roundHalfEven(image.width * scale));
  const h = Math.max(1, roundHalfEven(image.height * scale));
  return { image: scale < 1 ? shrink(image, w, h) : resizeBilinear(image, w, h), scale };
}

/** The network's input: NCHW float32, BGR minus the card's mean, zero-padded (the mean
 * colour) to a multiple of the card's grid. */
export function toInput(image, card) {
  const grid = card.pad_multiple;
  const { data, width, height } = image;
  const pw = Math.ceil(width / grid) * grid;
  const ph = Math.ceil(height / grid) * grid;
  const input = new Float32Array(3 * ph * pw);
  const [mb, mg, mr] = card.mean_bgr;
  const planes = [[2, mb], [1, mg], [0, mr]]; // B, G, R from RGB
  planes.forEach(([channel, mean], plane) => {
    const base = plane * ph * pw;
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        input[base + y * pw + x] = data[(y * width + x) * 3 + channel] - mean;
      }
    }
  });
  return { data: input, dims: [1, 3, ph, pw] };
}

/** The prior box of anchor `index` for an input of (width, height): [cx, cy, size]. */
export function anchor(index, width, height, card) {
  const { strides, sizes } = card.anchors;
  let i = index;
  for (let level = 0; level < strides.length; level += 1) {
    const stride = strides[level];
    const n = sizes[level].length;
    const nx = Math.ceil(width / stride);
    const count = Math.ceil(height / stride) * nx * n;
    if (i < count) {
      const cell = Math.floor(i / n);
      return [((cell % nx) + 0.5) * stride, (Math.floor(cell / nx) + 0.5) * stride, sizes[level][i % n]];
    }
    i -= count;
  }
  throw new Error(`anchor ${index} is outside the network's output`);
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return inter / Math.max(union, 1e-9);
}

/**
 * The network's outputs (flat loc [A*4], conf [A*2], landmarks [A*10]) for an input of
 * (width, height) -> faces in that input's pixels: {x, y, width, height, score, landmarks},
 * highest score first after suppression (detect.decode + detect.suppress).
 */
export function decode(loc, conf, landmarks, width, height, card) {
  const { score: threshold, nms_iou: nmsIou } = card.thresholds;
  const [varC, varS] = card.anchors.variances;
  const candidates = [];
  for (let i = 0, count = conf.length / 2; i < count; i += 1) {
    if (conf[i * 2 + 1] > threshold) candidates.push(i);
  }
  const found = candidates.map((i) => {
    const [cx, cy, size] = anchor(i, width, height, card);
    const x = cx + loc[i * 4] * varC * size;
    const y = cy + loc[i * 4 + 1] * varC * size;
    const clip = (v) => Math.min(10, Math.max(-10, v));
    const w = size * Math.exp(clip(loc[i * 4 + 2] * varS));
    const h = size * Math.exp(clip(loc[i * 4 + 3] * varS));
    const points = [];
    for (let p = 0; p < 5; p += 1) {
      points.push([cx + landmarks[i * 10 + p * 2] * varC * size,
        cy + landmarks[i * 10 + p * 2 + 1] * varC * size]);
    }
    return { corners: [x - w / 2, y - h / 2, x + w / 2, y + h / 2], score: conf[i * 2 + 1], points };
  });
  found.sort((a, b) => b.score - a.score); // stable: equal scores keep the anchors' order
  const chosen = [];
  let order = found;
  while (order.length) {
    const [best, ...rest] = order;
    chosen.push(best);
    order = rest.filter((other) => iou(best.corners, other.corners) <= nmsIou);
  }
  return chosen.map(({ corners: [x1, y1, x2, y2], score, points }) => ({
    x: x1, y: y1, width: x2 - x1, height: y2 - y1, score, landmarks: points,
  }));
}

/** Faces in the pixels of the image given to `detectionImage`, largest first, narrower
 * than `minSize` dropped (detect.FaceDetector.detect after the network). */
export function faces(decoded, scale, minSize = 0) {
  const k = 1 / scale;
  return decoded
    .map((f) => (k === 1 ? f : {
      x: f.x * k, y: f.y * k, width: f.width * k, height: f.height * k, score: f.score,
      landmarks: f.landmarks.map(([px, py]) => [px * k, py * k]),
    }))
    .filter((f) => Math.min(f.width, f.height) >= minSize)
    .sort((a, b) => b.width * b.height - a.width * a.height);
}

/** app._clipped_box: the box in whole pixels, kept inside an image of (width, height). */
export function clippedBox(face, width, height) {
  const left = Math.max(0, roundHalfEven(face.x));
  const top = Math.max(0, roundHalfEven(face.y));
  const right = Math.min(width, roundHalfEven(face.x + face.width));
  const bottom = Math.min(height, roundHalfEven(face.y + face.height));
  return { x: left, y: top, width: Math.max(0, right - left), height: Math.max(0, bottom - top) };
}
