// Entry point: wires the page's parts together.

import { Alerts } from './alerts.js';
import { Backoff, describe, health } from './api.js';
import { Bars } from './bars.js';
import { CalibrationPanel } from './calibrate-flow.js';
import { Calibration } from './calibration.js';
import { Live } from './live.js';
import { Analyser } from './ondevice.js';
import { ModelView } from './seen.js';
import { Upload } from './upload.js';

const $ = (id) => document.getElementById(id);

/** The main face's result: its top emotion in words and the eight bars. */
class ResultPanel {
  constructor(top, bars, announce, state) {
    this.top = top;
    this.bars = new Bars(bars);
    this.announce = announce;
    this.state = state;
    this.isPaused = false;
    this.announced = '';
    this.announcedAt = -Infinity;
  }

  show(ranked, now = performance.now()) {
    if (!ranked.length) return;
    const [name] = ranked[0];
    if (this.top.dataset.emotion !== name || this.top.classList.contains('idle')) {
      this.top.textContent = name;
      this.top.dataset.emotion = name;
      this.top.classList.remove('idle');
    }
    this.bars.show(ranked);
    this.bars.dim(this.isPaused);
    // Screen readers hear the top emotion when it settles on a new one, not on every frame.
    if (name !== this.announced && now - this.announcedAt > 2000) {
      this.announced = name;
      this.announcedAt = now;
      this.announce.textContent = `Main face: ${name}`;
    }
  }

  idle(text) {
    if (this.top.textContent !== text) {
      this.top.textContent = text;
      this.top.dataset.emotion = '';
      this.top.classList.add('idle');
    }
    this.bars.dim(true);
  }

  /** Requests stopped succeeding: the last result stays, dimmed and marked as paused. */
  paused(on) {
    if (on === this.isPaused) return;
    this.isPaused = on;
    this.state.hidden = !on;
    this.top.classList.toggle('stale', on);
    this.bars.dim(on || this.top.classList.contains('idle'));
  }
}

/** Round trip, predictions per second and faces in view. */
class Stats {
  constructor(rtt, rate, faces) {
    Object.assign(this, { rttOut: rtt, rateOut: rate, facesOut: faces });
  }

  show({ rtt = undefined, rate = undefined, count = undefined, faces = undefined }) {
    if (rtt !== undefined) {
      this.rttOut.textContent = rtt === null ? '–' : `${Math.round(rtt)} ms`;
      this.rttOut.dataset.value = rtt === null ? '' : rtt.toFixed(1);
    }
    if (rate !== undefined) {
      this.rateOut.textContent = rate.toFixed(1);
      this.rateOut.dataset.value = rate.toFixed(2);
    }
    if (count !== undefined) this.rateOut.dataset.count = String(count);
    if (faces !== undefined) {
      this.facesOut.textContent = String(faces);
      this.facesOut.dataset.value = String(faces);
    }
  }
}

async function checkServer(alerts, modelInfo, backoff, onHealth = () => {}) {
  for (;;) {
    try {
      const body = await health();
      alerts.clear('health');
      backoff.succeed();
      if (body && body.model) modelInfo.textContent = `Model: ${body.model}`;
      if (body) onHealth(body);
      return;
    } catch (err) {
      if (backoff.ready()) backoff.fail();
      const wait = backoff.remaining();
      alerts.set('health', `${describe(err)} The page will keep trying.`, performance.now() + wait);
      const timer = setInterval(() => alerts.tick(), 500);
      await new Promise((resolve) => setTimeout(resolve, wait));
      clearInterval(timer);
    }
  }
}

function main() {
  const alerts = new Alerts($('alert-area'), $('alert'), $('alert-retry'));
  const backoff = new Backoff();
  const panel = new ResultPanel($('top-emotion'), $('bars'), $('announce'), $('result-state'));
  const stats = new Stats($('rtt'), $('rate'), $('faces'));
  const uploadPanel = $('upload-panel');
  // Server (default) or this device: the switch in the page's header, remembered.
  const analyser = new Analyser({
    radios: [...document.querySelectorAll('input[name="analyse"]')],
    status: $('analyse-status'),
    progress: $('model-progress'),
    privacy: $('privacy'),
    modelInfo: $('model-info'),
  });

  // The person's calibration: on this device only, applied to every live answer.
  const personal = new Calibration();
  const applyToPhotos = $('apply-personal');
  const upload = new Upload({
    input: $('file'),
    dropzone: $('dropzone'),
    status: $('upload-status'),
    canvas: $('photo'),
    results: $('upload-results'),
    alerts,
    backoff,
    analyser,
    adjust: (predictions) => (applyToPhotos.checked ? personal.apply(predictions) : predictions),
  });

  const seen = new ModelView({
    toggle: $('seen-toggle'),
    panel: $('seen'),
    note: $('seen-note'),
    input: $('seen-input'),
    zoom: $('seen-zoom'),
    zoomMarks: $('seen-zoom-marks'),
    sent: $('seen-sent'),
    sentMarks: $('seen-sent-marks'),
    analyser,
  });

  const live = new Live({
    video: $('video'),
    overlay: $('overlay'),
    stage: $('stage'),
    hint: $('stage-hint'),
    startButton: $('start'),
    stopButton: $('stop'),
    status: $('status'),
    stats,
    panel,
    alerts,
    backoff,
    analyser,
    personal,
    seen,
    onNoCamera: () => {
      uploadPanel.classList.add('suggested');
      $('upload-intro').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
      $('file').focus({ preventScroll: true });
    },
  });

  const calibrate = new CalibrationPanel({
    state: $('personal-state'),
    start: $('calibrate-start'),
    notRight: $('not-right'),
    reset: $('personal-reset'),
    exportButton: $('personal-export'),
    importInput: $('personal-import'),
    flow: $('calibration-flow'),
    step: $('calibration-step'),
    instruction: $('calibration-instruction'),
    countdown: $('calibration-countdown'),
    frames: $('calibration-frames'),
    count: $('calibration-count'),
    skip: $('calibration-skip'),
    redo: $('calibration-redo'),
    cancel: $('calibration-cancel'),
    summary: $('calibration-summary'),
    picker: $('not-right-picker'),
    pickerChoices: $('not-right-choices'),
    pickerCancel: $('not-right-cancel'),
    message: $('personal-message'),
    applyToPhotos: $('apply-personal-label'),
  }, personal, live);

  if (!window.tracking) {
    $('start').disabled = true;
    live.setStatus('The face tracker (tracking.js) did not load; reload the page.', true);
  }
  window.addEventListener('pagehide', () => live.stop());
  document.body.dataset.ready = 'true';
  checkServer(alerts, $('model-info'), backoff, (body) => {
    seen.inputSize.server = body.input_size || 0;
  });
  return { live, upload, analyser, personal, calibrate };
}

main();
