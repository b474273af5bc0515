// "Calibrate to my face": the page asks for each expression in turn (Neutral first), counts
// down, captures ~3 s of the main verified face's answers, then fits the person's adjustment
// (calibration.js). Also "That's not right" (the last second joins the calibration), Reset,
// Export and Import. Nothing here makes a request.

import { CLASSES } from './personal.js';

export const STEPS = [
  { label: 'Neutral', say: 'Relax your face and look straight at the camera.', like: 'calm' },
  { label: 'Happiness', say: 'Smile broadly, with your eyes too.', like: 'joy' },
  { label: 'Surprise', say: 'Raise your eyebrows and drop your jaw.', like: 'wow' },
  { label: 'Sadness', say: 'Turn the corners of your mouth down; let your brows rise inward.', like: 'sorrow' },
  { label: 'Anger', say: 'Lower and pull your brows together; press your lips tight.', like: 'fury' },
  { label: 'Disgust', say: 'Wrinkle your nose and raise your upper lip.', like: 'yuck' },
  { label: 'Contempt', say: 'Tighten and raise one corner of your mouth only.', like: 'scorn' },
  { label: 'Fear', say: 'Open your eyes wide, raise your brows, stretch your lips back.', like: 'dread' },
];
export const TIMING = { countdownMs: 3000, captureMs: 3000 };
export const MIN_FRAMES = 5; // answers with a verified face per expression

const dateText = (iso) => new Date(iso).toLocaleDateString(undefined, {
  year: 'numeric', month: 'short', day: 'numeric',
});

export class CalibrationPanel {
  /**
   * els: the controls in index.html's calibration block; calibration: calibration.js;
   * live: the live view (is the camera on, is a face in view).
   */
  constructor(els, calibration, live) {
    Object.assign(this, { els, calibration, live });
    this.running = false;
    this.pendingAction = null;
    this.snapshot = [];
    els.start.addEventListener('click', () => this.run());
    els.skip.addEventListener('click', () => this.act('skip'));
    els.redo.addEventListener('click', () => this.act('redo'));
    els.cancel.addEventListener('click', () => this.act('cancel'));
    els.notRight.addEventListener('click', () => this.openPicker());
    els.reset.addEventListener('click', () => this.reset());
    els.exportButton.addEventListener('click', () => this.exportFile());
    els.importInput.addEventListener('change', () => this.importFile());
    els.pickerCancel.addEventListener('click', () => this.closePicker());
    for (const label of CLASSES) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = label;
      button.dataset.label = label;
      button.addEventListener('click', () => this.correct(label));
      els.pickerChoices.append(button);
    }
    calibration.onChange(() => this.showState());
    this.showState();
  }

  say(text, warning = false) {
    this.els.message.textContent = text;
    this.els.message.classList.toggle('warning', warning);
  }

  showState() {
    const { calibration, els } = this;
    const c = calibration.calibration;
    if (c && calibration.fitted) {
      const shown = Object.values(c.counts || {}).filter((n) => n > 0).length;
      els.state.textContent = calibration.active
        ? `Calibrated to you on ${dateText(calibration.fitted)} (${shown} expressions).`
        : `Not adjusted: ${c.reason || 'the calibration changed nothing.'}`;
      els.state.dataset.state = calibration.active ? 'calibrated' : 'identity';
    } else {
      els.state.textContent = 'Not calibrated to you.';
      els.state.dataset.state = 'none';
    }
    els.reset.hidden = !c;
    els.exportButton.hidden = !c;
    if (els.applyToPhotos) els.applyToPhotos.hidden = !calibration.active;
  }

  act(action) {
    if (this.pendingAction) this.pendingAction(action);
  }

  /** Waits ms, or less if the person presses Skip, Redo or Cancel (then says which). */
  waitOrAction(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingAction = null;
        resolve('time');
      }, ms);
      this.pendingAction = (action) => {
        clearTimeout(timer);
        this.pendingAction = null;
        resolve(action);
      };
    });
  }

  async run(steps = STEPS) {
    if (this.running) return;
    if (!this.live.running) {
      this.say('Start the camera first: calibrating needs your face in view.', true);
      return;
    }
    this.running = true;
    this.calibration.warmUp(); // while the person poses: the fit at the end then runs compiled
    this.closePicker();
    this.els.flow.hidden = false;
    this.els.start.disabled = true;
    this.els.notRight.disabled = true;
    this.say('');
    const captured = {};
    const started = performance.now();
    try {
      for (let i = 0; i < steps.length;) {
        const outcome = await this.step(steps[i], i, steps.length);
        if (outcome === 'cancel') {
          this.say('Calibration cancelled; nothing changed.');
          return;
        }
        if (outcome === 'redo') continue;
        if (Array.isArray(outcome)) captured[steps[i].label] = outcome;
        this.mark(steps[i].label, Array.isArray(outcome) ? outcome.length : 0);
        i += 1;
      }
      this.finish(captured, performance.now() - started);
    } finally {
      this.running = false;
      this.calibration.collector = null;
      this.els.flow.hidden = true;
      this.els.start.disabled = false;
      this.els.notRight.disabled = false;
    }
  }

  /** One expression: countdown, capture; the frames, or 'skip' / 'redo' / 'cancel'. */
  async step(step, index, total) {
    const { els } = this;
    els.step.textContent = `${index + 1} of ${total}: ${step.label}`;
    els.step.dataset.label = step.label;
    els.instruction.textContent = `${step.say} (Think “${step.like}”.)`;
    els.frames.max = MIN_FRAMES;
    els.frames.value = 0;
    els.count.textContent = `0 of ${MIN_FRAMES} frames with your face`;
    for (let left = TIMING.countdownMs; left > 0; left -= 1000) {
      els.countdown.textContent = `Get ready… ${Math.ceil(left / 1000)}`;
      const action = await this.waitOrAction(Math.min(1000, left));
      if (action !== 'time') return action;
    }
    const frames = [];
    els.countdown.textContent = 'Hold it…';
    this.calibration.collector = (predictions) => {
      frames.push(predictions);
      els.frames.value = Math.min(frames.length, MIN_FRAMES);
      els.count.textContent = `${frames.length} of ${MIN_FRAMES} frames with your face`;
    };
    const action = await this.waitOrAction(TIMING.captureMs);
    this.calibration.collector = null;
    if (action !== 'time') return action;
    if (frames.length >= MIN_FRAMES) return frames;
    els.countdown.textContent = `Only ${frames.length} frames showed your face (${MIN_FRAMES} `
      + 'needed). Face the camera in good light, then Redo, or Skip this one.';
    for (;;) {
      const choice = await this.waitOrAction(3_600_000);
      if (choice !== 'time') return choice;
    }
  }

  mark(label, count) {
    let item = this.els.summary.querySelector(`[data-label="${label}"]`);
    if (!item) {
      item = document.createElement('li');
      item.dataset.label = label;
      this.els.summary.append(item);
    }
    item.dataset.frames = String(count);
    item.textContent = count ? `${label}: ${count} frames` : `${label}: skipped`;
  }

  finish(captured, ms) {
    const labels = Object.keys(captured);
    if (labels.length === 0) {
      this.say('Every expression was skipped, so nothing changed.', true);
      return;
    }
    const c = this.calibration.replace(captured);
    const took = `${Math.round(ms / 1000)} s, fitted in ${this.calibration.lastFitMs.toFixed(1)} ms`;
    if (c.identity) {
      this.say(`${c.reason} (${took})`, true);
    } else {
      const before = Math.round(100 * c.frames.before);
      const after = Math.round(100 * c.frames.after);
      // scale < 1: frames held out of the fit showed the whole adjustment would overreach.
      const strength = c.scale < 1 ? ` Applied at ${Math.round(100 * c.scale)}% strength, as `
        + 'frames held out of the fit suggested.' : '';
      // class-map: the expressions the model confuses are told apart by the rest of the answer.
      const how = c.kind === 'class-map' ? ' Your expressions are told apart by the whole of '
        + 'each answer, not only by which expression the model names.' : '';
      this.say(`Done (${took}). On your own frames the model now names ${after}% of your `
        + `expressions right (before: ${before}%).${strength}${how}`);
    }
  }

  openPicker() {
    // The face as it was when the person saw the wrong answer, not after they chose.
    this.snapshot = this.calibration.lastSecond();
    if (!this.snapshot.length) {
      this.say('No face was read in the last second; keep your face in view and try again.', true);
      return;
    }
    this.calibration.warmUp(); // while the person picks
    this.els.picker.hidden = false;
    this.els.pickerChoices.querySelector('button').focus();
  }

  closePicker() {
    this.els.picker.hidden = true;
  }

  correct(label) {
    this.closePicker();
    const frames = this.snapshot;
    this.snapshot = [];
    const c = this.calibration.correct(label, frames);
    this.say(c.identity
      ? `Added ${frames.length} frames as ${label}. ${c.reason}`
      : `Added ${frames.length} frames as ${label} and refitted in ${this.calibration.lastFitMs.toFixed(1)} ms.`);
    this.els.notRight.focus();
  }

  reset() {
    this.calibration.reset();
    this.els.summary.replaceChildren();
    this.say('Calibration removed: the model’s own values are shown again.');
  }

  exportFile() {
    const blob = new Blob([JSON.stringify(this.calibration.toFile(), null, 1)], {
      type: 'application/json',
    });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `emotion-calibration-${new Date().toISOString().slice(0, 10)}.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  async importFile() {
    const [file] = this.els.importInput.files;
    this.els.importInput.value = '';
    if (!file) return;
    try {
      this.calibration.fromFile(JSON.parse(await file.text()));
      this.say(`Calibration imported from ${file.name}.`);
    } catch (err) {
      this.say(`That file cannot be used: ${err.message}`, true);
    }
  }
}
