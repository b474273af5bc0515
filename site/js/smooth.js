// Smoothing over recent frames, so that labels do not flicker.

import { CLASSES } from './api.js';

/**
 * Exponential moving average of the probabilities with a time constant (ms): a prediction
 * weighs 1 - exp(-dt / tau), so the smoothing feels the same at 5 or 25 predictions/s.
 */
export class Smoother {
  constructor(tau = 400) {
    this.tau = tau;
    this.values = null;
    this.at = 0;
    this.version = 0; // how many predictions went in
  }

  add(predictions, now = performance.now()) {
    if (!this.values) {
      this.values = Object.fromEntries(CLASSES.map((c) => [c, predictions[c] ?? 0]));
    } else {
      const alpha = 1 - Math.exp(-Math.max(0, now - this.at) / this.tau);
      for (const c of CLASSES) {
        this.values[c] += alpha * ((predictions[c] ?? 0) - this.values[c]);
      }
    }
    this.at = now;
    this.version += 1;
    return this.ranked();
  }

  /** [[name, probability], ...], most likely first. */
  ranked() {
    if (!this.values) return [];
    return Object.entries(this.values).sort((a, b) => b[1] - a[1]);
  }

  top() {
    const ranked = this.ranked();
    return ranked.length ? ranked[0][0] : null;
  }
}

/** Events per second over a sliding window, and an average of the last round trips. */
export class RateMeter {
  constructor(window = 2000) {
    this.window = window;
    this.times = [];
    this.rtts = [];
    this.count = 0;
  }

  add(rtt, now = performance.now()) {
    this.count += 1;
    this.times.push(now);
    this.rtts.push(rtt);
    if (this.rtts.length > 20) this.rtts.shift();
    this.trim(now);
  }

  trim(now) {
    while (this.times.length && now - this.times[0] > this.window) this.times.shift();
  }

  rate(now = performance.now()) {
    this.trim(now);
    if (this.times.length < 2) return this.times.length / (this.window / 1000);
    const span = Math.max(now - this.times[0], 1);
    return (this.times.length * 1000) / Math.max(span, this.window / 2);
  }

  rtt() {
    if (!this.rtts.length) return null;
    return this.rtts.reduce((a, b) => a + b, 0) / this.rtts.length;
  }

  reset() {
    this.times = [];
    this.rtts = [];
  }
}
