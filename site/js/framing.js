// Detector box -> the crop the classifier sees, as the model card's `framing` block says:
// function/emotion/framing.py in JavaScript (pure, no DOM; node tests it against Python).

import { roundHalfEven } from './retinaface.js';

const DEFAULTS = { margin: 0.1, square: true, shift_y: 0 };

/** framing.Framing.from_card: the card's block, with the same defaults. */
export function framingOf(card) {
  const block = (card && card.framing) || {};
  const fill = block.as_sent && block.as_sent.fill;
  return { ...DEFAULTS, ...block, asSentFill: fill == null ? null : Number(fill) };
}

/** Framing.keeps (/face): is a crop of (width, height) classified as sent? Yes without a
 * face, or when the face's longer side fills the card's `as_sent.fill` of the crop's. */
export function keeps(face, width, height, framing) {
  if (!face) return true;
  const fill = Math.max(face.width, face.height) / Math.max(width, height);
  return framing.asSentFill !== null && fill >= framing.asSentFill;
}

/** framing.pixel_box: the whole pixels a region covers (at least one each way). */
export function pixelBox([l, t, r, b]) {
  const left = roundHalfEven(l);
  const top = roundHalfEven(t);
  return [left, top, Math.max(roundHalfEven(r), left + 1), Math.max(roundHalfEven(b), top + 1)];
}

/** Framing.region: (left, top, right, bottom) in the image's pixels; may reach outside it. */
export function region(face, framing) {
  let w = face.width;
  let h = face.height;
  if (framing.square) w = h = Math.max(w, h);
  const cx = face.x + face.width / 2;
  const cy = face.y + face.height / 2 + framing.shift_y * h;
  w *= 1 + 2 * framing.margin;
  h *= 1 + 2 * framing.margin;
  return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
}

/** framing.crop_region on RGBA pixels: the region's pixels; parts outside the image repeat
 * its nearest edge (as training's reframe does), not black bars the model never saw. */
export function cropRegion(rgba, width, height, region) {
  const [left, top, right, bottom] = pixelBox(region);
  const w = right - left;
  const h = bottom - top;
  const out = new Uint8ClampedArray(w * h * 4);
  const clamp = (v, size) => Math.min(Math.max(v, 0), size - 1);
  // Wholly outside the image: its nearest edge pixel throughout (as framing.py).
  const outside = right <= 0 || left >= width || bottom <= 0 || top >= height;
  for (let y = 0; y < h; y += 1) {
    const row = clamp(outside ? top : top + y, height) * width;
    for (let x = 0; x < w; x += 1) {
      const from = (row + clamp(outside ? left : left + x, width)) * 4;
      const to = (y * w + x) * 4;
      out[to] = rgba[from];
      out[to + 1] = rgba[from + 1];
      out[to + 2] = rgba[from + 2];
      out[to + 3] = rgba[from + 3];
    }
  }
  return { data: out, width: w, height: h };
}
