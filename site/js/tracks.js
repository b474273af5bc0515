// Faces followed over time in the live view. tracking.js (Viola-Jones) only proposes boxes;
// a box becomes a face when the server's detector finds a face in its crop (the `face` block
// of /face's answer, or the same check on this device: ondevice.js), and stops being one
// after a few crops in a row without a face. Only verified faces are drawn, counted,
// classified and can be the main face.

import { iou } from './faces.js';
import { Smoother } from './smooth.js';

export const TRACKING = {
  maxTracks: 8, // proposals followed at once, verified or not
  hitsToProbe: 2, // tracking.js must see a box twice before its crop is checked (flukes are not)
  missesToReject: 2, // crops without a face before an unverified box is set aside...
  missesToDrop: 3, // ...and before a verified face stops being one
  // A box set aside is checked again after reprobeMs (someone may have moved in), then ever
  // more rarely while it stays where it was (clutter), and soon again once it moves.
  reprobeMs: 3000,
  maxReprobeMs: 15000,
  movedIou: 0.5,
  staleMs: 250, // a box neither proposed nor verified for this long is not sent...
  goneMs: 700, // ...and for this long is forgotten
  verifiedGoneMs: 1500, // a verified face is confirmed by each answer: it may go unproposed longer
  rejectedGoneMs: 10000, // a box set aside is remembered longer: tracking.js flickers on clutter
  fitHoldMs: 500, // while the server's box is this fresh, tracking.js's box does not move it
  minFaceFraction: 0.15, // a face narrower than this share of the crop is not taken as one
  smoothing: 0.5, // weight of a new box in the followed one
  // A new box this much inside a verified face (or around it) is that person again, offset
  // (chin and tie, or head and shoulders): not worth a crop.
  besideFace: 0.25,
  // The main face changes only when another is this much larger (in area): two faces of about
  // the same size must not swap the Expression panel back and forth.
  mainHysteresis: 1.1,
};

const COLOURS = ['#ffd166', '#4cc9f0', '#f4978e', '#95d5b2', '#cdb4db', '#f9c74f'];

let nextId = 1;
// How long tracking.js takes per run here: on a slow device a box is proposed only that often,
// so "not proposed lately" must be judged against it, not against a fixed time.
let detectMs = 0;

/** Tells the tracks how long tracking.js's last run took (ms). */
export function setPace(ms) {
  detectMs = Number.isFinite(ms) ? ms : 0;
}

function blend(target, box, a) {
  for (const k of ['x', 'y', 'width', 'height']) target[k] += a * (box[k] - target[k]);
}

/** Intersection over the smaller box's area: 1 when one box lies inside the other. */
function overlapOfSmaller(a, b) {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  return (w * h) / Math.min(a.width * a.height, b.width * b.height);
}

function centreInside(box, outer) {
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  return cx > outer.x && cx < outer.x + outer.width && cy > outer.y && cy < outer.y + outer.height;
}

/**
 * The detector's verdict on one crop: {found, box} with the box in the frame's pixels, or null
 * when the answer has no usable `face` block (an older server: nothing to verify with, so the
 * proposal is trusted as before). `cropSize`: the crop's width in the pixels of the check's box.
 */
export function readCheck(check, square, cropSize) {
  if (!check || typeof check.found !== 'boolean') return null;
  const b = check.box;
  const boxOk = b && ['x', 'y', 'width', 'height'].every((k) => Number.isFinite(b[k]));
  if (!check.found || !boxOk) return { found: false, box: null };
  const k = square.width / cropSize;
  if (b.width < TRACKING.minFaceFraction * cropSize) return { found: false, box: null };
  return {
    found: true,
    score: check.score,
    box: { x: square.x + b.x * k, y: square.y + b.y * k, width: b.width * k, height: b.height * k },
  };
}

export class Track {
  constructor(box, now) {
    this.id = nextId++;
    this.box = { x: box.x, y: box.y, width: box.width, height: box.height };
    this.bornAt = now;
    this.seenAt = now; // last proposed by tracking.js or confirmed by the server
    this.hits = 1;
    this.verified = false;
    this.rejected = false;
    this.misses = 0;
    this.fittedAt = -Infinity;
    this.reprobeMs = TRACKING.reprobeMs;
    this.sentAt = -Infinity;
    this.inFlight = null; // the AbortController of the request in flight
    this.smoother = new Smoother();
    this.classified = false;
    this.colour = COLOURS[0];
  }

  get area() {
    return this.box.width * this.box.height;
  }

  /** How long this box is remembered after it was last proposed or confirmed. */
  get keepMs() {
    if (this.rejected) return Math.max(TRACKING.rejectedGoneMs, 3 * detectMs);
    return Math.max(this.shown ? TRACKING.verifiedGoneMs : TRACKING.goneMs, 3 * detectMs);
  }

  /** Shown, counted and classified. */
  get shown() {
    return this.verified && !this.rejected;
  }

  /** tracking.js proposed this box again. */
  propose(box, now) {
    this.hits += 1;
    this.seenAt = now;
    if (this.rejected && iou(this.box, box) < TRACKING.movedIou) {
      this.reprobeMs = Math.min(this.reprobeMs, TRACKING.reprobeMs / 6); // it moved: look soon
    }
    if (now - this.fittedAt > TRACKING.fitHoldMs) blend(this.box, box, TRACKING.smoothing);
  }

  /** Whether a crop of this box should go out now (one in flight at most). */
  due(now, minGapMs) {
    const staleMs = Math.max(this.shown ? TRACKING.verifiedGoneMs : TRACKING.staleMs,
      1.5 * detectMs);
    if (this.inFlight || now - this.seenAt > staleMs) return false;
    if (now - this.sentAt < minGapMs) return false;
    if (this.rejected) return now - this.sentAt >= this.reprobeMs;
    return this.verified || this.hits >= TRACKING.hitsToProbe;
  }

  /**
   * The server answered for a crop of this box. Returns true when its predictions describe a
   * face (and were added to the smoother), false when they describe something else.
   */
  settle(check, predictions, now) {
    if (check === null || check.found) {
      if (check) {
        // The server's box is the better one: follow it (tracking.js may not see a turned face).
        // A first fit, or a face elsewhere in the crop, is taken as it is; a small move is smoothed.
        const fresh = now - this.fittedAt > TRACKING.goneMs || iou(this.box, check.box) < 0.2;
        if (fresh) Object.assign(this.box, check.box);
        else blend(this.box, check.box, TRACKING.smoothing);
        this.fittedAt = now;
      }
      this.seenAt = now;
      this.verified = true;
      this.rejected = false;
      this.misses = 0;
      this.reprobeMs = TRACKING.reprobeMs;
      this.smoother.add(predictions, now);
      this.classified = true;
      return true;
    }
    this.misses += 1;
    if (this.rejected) this.reprobeMs = Math.min(2 * this.reprobeMs, TRACKING.maxReprobeMs);
    const limit = this.verified ? TRACKING.missesToDrop : TRACKING.missesToReject;
    if (this.misses >= limit && !this.rejected) {
      this.rejected = true;
      this.verified = false;
      this.classified = false;
      this.smoother = new Smoother();
    }
    return false;
  }
}

/** All followed boxes: pairs proposals with them, forgets old ones, merges duplicates. */
export class Tracks {
  constructor() {
    this.all = [];
    this.current = null; // the main face last chosen
  }

  clear() {
    for (const t of this.all) if (t.inFlight) t.inFlight.abort();
    this.all = [];
    this.current = null;
  }

  /** Pairs this frame's proposals with the boxes already followed (greedy, by overlap). */
  match(boxes, now) {
    const free = new Set(this.all);
    const ordered = [...boxes].sort((a, b) => (b.total || 1) - (a.total || 1));
    for (const box of ordered) {
      let best = null;
      let bestScore = 0.15;
      for (const t of free) {
        // A verified box is framed by the server's detector, a proposal by tracking.js: a
        // centre inside counts too. (Not for other boxes: a face inside a large box set
        // aside must get its own.)
        const inside = t.shown && centreInside(box, t.box);
        const score = Math.max(iou(t.box, box), inside ? 0.2 : 0);
        if (score > bestScore) {
          best = t;
          bestScore = score;
        }
      }
      if (best) {
        best.propose(box, now);
        free.delete(best);
      } else if (this.all.length < TRACKING.maxTracks && !this.onAFace(box)) {
        this.add(new Track(box, now));
      }
    }
  }

  /** Whether a box is on a verified face's person: over the face, or on the neck and tie
   * right under it (where no other face fits). */
  onAFace(box, except = null) {
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    return this.all.some((t) => {
      if (t === except || !t.shown) return false;
      const f = t.box;
      const under = cx > f.x && cx < f.x + f.width && cy > f.y + f.height
        && cy < f.y + 2 * f.height;
      return under || overlapOfSmaller(f, box) > TRACKING.besideFace;
    });
  }

  add(track) {
    track.colour = COLOURS.find((c) => !this.all.some((t) => t.colour === c)) || COLOURS[0];
    this.all.push(track);
  }

  /** Forgets boxes gone for a while and merges two that now follow the same face. */
  prune(now) {
    this.all = this.all.filter((t) => {
      // A verified face waiting for its answer stays: a slow server is not a face leaving.
      const gone = now - t.seenAt > t.keepMs && !(t.shown && t.inFlight);
      if (gone && t.inFlight) t.inFlight.abort();
      return !gone;
    });
    for (const a of this.all) {
      for (const b of this.all) {
        if (a === b || a.dropped || b.dropped) continue;
        if (iou(a.box, b.box) > 0.4 || (a.shown && b.shown && centreInside(b.box, a.box))) {
          // Keep the verified one; of two alike, the older (its colour and history stay).
          const loser = a.shown !== b.shown ? (a.shown ? b : a) : a.id < b.id ? b : a;
          loser.dropped = true;
        }
      }
    }
    for (const t of this.all) {
      if (!t.shown && this.onAFace(t.box, t)) t.dropped = true;
    }
    this.all = this.all.filter((t) => {
      if (t.dropped && t.inFlight) t.inFlight.abort();
      return !t.dropped;
    });
  }

  /** Verified faces, largest first. */
  faces() {
    return this.all.filter((t) => t.shown).sort((a, b) => b.area - a.area);
  }

  /** The largest verified face, or null: never an unverified box. */
  main() {
    const [largest = null] = this.faces();
    const kept = this.current;
    if (largest && kept && kept !== largest && kept.shown && this.all.includes(kept)
      && largest.area < kept.area * TRACKING.mainHysteresis) {
      return kept;
    }
    this.current = largest;
    return largest;
  }

  /** Whether every followed box has been judged (a face, or set aside). */
  settled() {
    return this.all.length > 0 && this.all.every((t) => t.shown || t.rejected);
  }
}
