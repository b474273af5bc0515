// Eight bars, sorted by probability, each with its percentage; accessible as ARIA meters.

import { CLASSES } from './api.js';

export function percent(p) {
  return `${(p * 100).toFixed(1)}%`;
}

export class Bars {
  constructor(list) {
    this.list = list;
    this.rows = new Map();
    this.order = '';
    this.updates = 0;
    for (const name of CLASSES) {
      const row = document.createElement('li');
      row.className = 'bar';
      row.dataset.emotion = name;
      const label = document.createElement('span');
      label.className = 'bar-name';
      label.id = `${list.id}-${name}`;
      label.textContent = name;
      const track = document.createElement('span');
      track.className = 'bar-track';
      track.setAttribute('role', 'meter');
      track.setAttribute('aria-labelledby', label.id);
      track.setAttribute('aria-valuemin', '0');
      track.setAttribute('aria-valuemax', '100');
      // A meter must always have a value (axe: aria-required-attr); none yet says so in words.
      track.setAttribute('aria-valuenow', '0');
      track.setAttribute('aria-valuetext', 'no result yet');
      const fill = document.createElement('span');
      fill.className = 'bar-fill';
      track.append(fill);
      const value = document.createElement('span');
      value.className = 'bar-value';
      value.textContent = '–';
      row.append(label, track, value);
      list.append(row);
      this.rows.set(name, { row, track, fill, value });
    }
    this.list.classList.add('empty');
  }

  /** ranked: [[name, probability], ...] most likely first. */
  show(ranked) {
    if (!ranked.length) return;
    this.list.classList.remove('empty');
    this.updates += 1;
    this.list.dataset.updates = String(this.updates); // lets tests see it keep updating
    ranked.forEach(([name, p], i) => {
      const r = this.rows.get(name);
      if (!r) return;
      const pct = Math.round(p * 1000) / 10;
      r.fill.style.width = `${Math.min(100, Math.max(0, pct))}%`;
      r.value.textContent = percent(p);
      r.track.setAttribute('aria-valuenow', String(pct));
      r.track.setAttribute('aria-valuetext', `${percent(p)}`);
      r.row.classList.toggle('top', i === 0);
    });
    const order = ranked.map(([name]) => name).join();
    if (order !== this.order) {
      this.order = order;
      for (const [name] of ranked) {
        const r = this.rows.get(name);
        if (r) this.list.append(r.row);
      }
    }
  }

  dim(on) {
    this.list.classList.toggle('stale', on);
  }
}
