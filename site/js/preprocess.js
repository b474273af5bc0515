// A face crop (RGBA pixels) -> the model's input, exactly as the server does it
// (function/emotion/preprocess.py and decode.py, with Pillow): transparent pixels over white,
// grayscale with Pillow's integer formula, centre square, Pillow's two-pass bilinear resize
// with its fixed-point coefficients, then (x / 255 - mean) / std in float32.
// Pure functions, no DOM: the worker runs them and node tests them against Pillow.

const PRECISION_BITS = 32 - 8 - 2; // Pillow's Resample.c for 8-bit images
const ONE = 2 ** PRECISION_BITS;

/** RGBA (Uint8ClampedArray / Uint8Array) -> 8-bit luma, as Pillow's convert("L"). */
export function toGray(rgba, width, height) {
  const gray = new Uint8Array(width * height);
  for (let i = 0, j = 0; j < gray.length; i += 4, j += 1) {
    let r = rgba[i];
    let g = rgba[i + 1];
    let b = rgba[i + 2];
    const a = rgba[i + 3];
    if (a !== 255) {
      // decode.py composites transparency over white before anything else.
      r = Math.round((r * a + 255 * (255 - a)) / 255);
      g = Math.round((g * a + 255 * (255 - a)) / 255);
      b = Math.round((b * a + 255 * (255 - a)) / 255);
    }
    // ITU-R 601-2 luma in Pillow's 16-bit fixed point (Convert.c, L24).
    gray[j] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
  }
  return gray;
}

/** The centred square of a gray image (preprocess.py's _center_square: floor division). */
export function centreSquare(gray, width, height) {
  if (width === height) return { pixels: gray, side: width };
  const side = Math.min(width, height);
  const left = Math.floor((width - side) / 2);
  const top = Math.floor((height - side) / 2);
  const out = new Uint8Array(side * side);
  for (let y = 0; y < side; y += 1) {
    const from = (top + y) * width + left;
    out.set(gray.subarray(from, from + side), y * side);
  }
  return { pixels: out, side };
}

function bilinear(x) {
  const ax = Math.abs(x);
  return ax < 1 ? 1 - ax : 0;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis. */
export function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale; // the bilinear filter's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx += 1) {
    const centre = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(0, Math.trunc(centre - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(centre + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x += 1) {
      const w = bilinear((x + xmin - centre + 0.5) * ss);
      weights[xx * ksize + x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x += 1) {
      if (total !== 0) weights[xx * ksize + x] /= total;
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const fixed = new Int32Array(weights.length);
  for (let i = 0; i < weights.length; i += 1) {
    const w = weights[i] * ONE;
    fixed[i] = w < 0 ? Math.trunc(-0.5 + w) : Math.trunc(0.5 + w);
  }
  return { bounds, fixed, ksize };
}

function clip8(sum) {
  if (sum <= 0) return 0;
  if (sum >= ONE * 256) return 255;
  return Math.floor(sum / ONE);
}

/** Pillow's Image.resize(..., BILINEAR) for an 8-bit square image: horizontal pass first. */
export function resizeBilinear(pixels, inSide, outSide) {
  if (inSide === outSide) return pixels;
  const h = coefficients(inSide, outSide);
  const v = coefficients(inSide, outSide);
  // Only the source rows the vertical pass reads go through the horizontal pass.
  const first = v.bounds[0];
  const last = v.bounds[outSide * 2 - 2] + v.bounds[outSide * 2 - 1];
  const rows = last - first;
  const temp = new Uint8Array(outSide * rows);
  for (let y = 0; y < rows; y += 1) {
    const row = (y + first) * inSide;
    for (let xx = 0; xx < outSide; xx += 1) {
      const xmin = h.bounds[xx * 2];
      const xmax = h.bounds[xx * 2 + 1];
      const k = xx * h.ksize;
      let sum = ONE / 2;
      for (let x = 0; x < xmax; x += 1) sum += pixels[row + xmin + x] * h.fixed[k + x];
      temp[y * outSide + xx] = clip8(sum);
    }
  }
  const out = new Uint8Array(outSide * outSide);
  for (let yy = 0; yy < outSide; yy += 1) {
    const ymin = v.bounds[yy * 2] - first;
    const ymax = v.bounds[yy * 2 + 1];
    const k = yy * v.ksize;
    for (let xx = 0; xx < outSide; xx += 1) {
      let sum = ONE / 2;
      for (let y = 0; y < ymax; y += 1) sum += temp[(ymin + y) * outSide + xx] * v.fixed[k + y];
      out[yy * outSide + xx] = clip8(sum);
    }
  }
  return out;
}

/** (pixel / 255 - mean) / std, each step rounded to float32 as numpy does it. */
export function normalise(pixels, mean, std) {
  const out = new Float32Array(pixels.length);
  const m = Math.fround(mean);
  const s = Math.fround(std);
  for (let i = 0; i < pixels.length; i += 1) {
    out[i] = Math.fround(Math.fround(pixels[i] / 255) - m) / s;
  }
  return out;
}

/** RGBA pixels of a crop -> Float32Array [1, 1, side, side] data, as the card says. */
export function toInput(rgba, width, height, card) {
  if (card.color_mode !== 'L' || card.resize !== 'bilinear') {
    throw new Error(`Unsupported model card: ${card.color_mode}, ${card.resize} resize.`);
  }
  const gray = toGray(rgba, width, height);
  const { pixels, side } = centreSquare(gray, width, height);
  return normalise(resizeBilinear(pixels, side, card.input_size), card.mean, card.std);
}

/** softmax(logits / temperature), in double precision like the server. */
export function probabilities(logits, temperature) {
  const scaled = Array.from(logits, (z) => z / temperature);
  const top = Math.max(...scaled);
  const exps = scaled.map((z) => Math.exp(z - top));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}
