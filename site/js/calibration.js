// The person's own calibration: the frames they labelled (the model's raw answers, never an
// image), the adjustment fitted on them (personal.js), kept in this browser's localStorage and
// never sent. The live view hands every raw answer for the main face to `observe` and shows
// `apply(...)` of it.

import {
  applyPersonal, checkCalibration, fitPersonal, probabilityVector, warmUpFit,
} from './personal.js';

const STORE_KEY = 'emotion.personal.v1';
export const FILE_FORMAT = 'emotion-evaluator-calibration';
export const RECENT_MS = 1000; // "That's not right" takes the main face's last second

export class Calibration {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
    this.calibration = null;
    this.samples = [];
    this.fitted = null; // ISO date of the last fit
    this.recent = []; // [{at, predictions}] of the main face, raw
    this.listeners = new Set();
    this.collector = null; // the guided flow's capture, while it runs
    this.warmed = false; // warmUp ran
    this.load();
  }

  get active() {
    return Boolean(this.calibration && !this.calibration.identity);
  }

  /** The answer as shown: adjusted when calibrated, else as the model gave it. */
  apply(predictions) {
    if (!this.active) return predictions;
    try {
      return applyPersonal(this.calibration, predictions);
    } catch {
      return predictions; // an answer it cannot read is shown as the model gave it
    }
  }

  /** A raw answer for the main, verified face. */
  observe(predictions, at = performance.now()) {
    this.recent.push({ at, predictions });
    while (this.recent.length && this.recent[0].at < at - RECENT_MS) this.recent.shift();
    if (this.collector) this.collector(predictions);
  }

  lastSecond(now = performance.now()) {
    return this.recent.filter((r) => r.at >= now - RECENT_MS).map((r) => r.predictions);
  }

  forgetRecent() {
    this.recent = [];
  }

  /** Replaces the frames of the labels given (a redone calibration) and refits. */
  replace(samplesByLabel) {
    const labels = new Set(Object.keys(samplesByLabel));
    const kept = this.samples.filter((s) => !labels.has(s.label));
    const added = Object.entries(samplesByLabel)
      .flatMap(([label, list]) => list.map((predictions) => ({ predictions, label })));
    return this.refit([...kept, ...added]);
  }

  /** "That's not right": these answers were really `label`. */
  correct(label, predictionsList) {
    return this.refit([...this.samples, ...predictionsList.map((predictions) => ({ predictions, label }))]);
  }

  /** Has the browser compile the fit (once a page), off the click that asked for it. */
  warmUp() {
    if (this.warmed) return;
    this.warmed = true;
    setTimeout(() => warmUpFit(), 0);
  }

  refit(samples) {
    const started = performance.now();
    const calibration = fitPersonal(samples);
    this.lastFitMs = performance.now() - started;
    this.samples = samples;
    this.calibration = calibration;
    this.fitted = new Date().toISOString();
    this.save();
    return calibration;
  }

  reset() {
    this.calibration = null;
    this.samples = [];
    this.fitted = null;
    try {
      this.storage.removeItem(STORE_KEY);
    } catch {
      // Storage refused (private mode): nothing was kept anyway.
    }
    this.changed();
  }

  /** What Export writes and Import reads (a kiosk can share one calibration). */
  toFile() {
    return {
      format: FILE_FORMAT,
      version: 1,
      fitted: this.fitted,
      calibration: this.calibration,
      samples: this.samples,
    };
  }

  fromFile(data) {
    if (!data || data.format !== FILE_FORMAT) {
      throw new Error('This file is not a calibration exported by this page.');
    }
    checkCalibration(data.calibration);
    const samples = Array.isArray(data.samples) ? data.samples : [];
    samples.forEach((s, i) => probabilityVector(s && s.predictions, `sample ${i}`));
    this.calibration = data.calibration;
    this.samples = samples;
    this.fitted = typeof data.fitted === 'string' ? data.fitted : new Date().toISOString();
    this.save();
  }

  load() {
    try {
      const raw = this.storage && this.storage.getItem(STORE_KEY);
      if (raw) this.fromFile(JSON.parse(raw));
    } catch {
      this.calibration = null; // unreadable or from an older page: start uncalibrated
      this.samples = [];
    }
  }

  save() {
    try {
      this.storage.setItem(STORE_KEY, JSON.stringify(this.toFile()));
    } catch {
      // Storage refused: the calibration still applies until the page is closed.
    }
    this.changed();
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  changed() {
    for (const listener of this.listeners) listener(this);
  }
}
