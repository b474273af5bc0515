// One visible place for failures: a role=alert line (announced when its message changes) and
// a quieter countdown line beside it that is not re-announced every second.

export class Alerts {
  constructor(area, message, retry) {
    this.area = area;
    this.message = message;
    this.retry = retry;
    this.sources = new Map();
  }

  /** source: who raised it ('live', 'upload', 'health'); retryAt: performance.now() time. */
  set(source, text, retryAt = null) {
    this.sources.set(source, { text, retryAt });
    this.render();
  }

  clear(source) {
    if (this.sources.delete(source)) this.render();
  }

  /** Refreshes the countdown; cheap enough to call every frame. */
  tick(now = performance.now()) {
    const latest = [...this.sources.values()].at(-1);
    let line = '';
    if (latest && latest.retryAt !== null) {
      const seconds = Math.ceil((latest.retryAt - now) / 1000);
      line = seconds > 0 ? `Trying again in ${seconds} s…` : 'Trying again now…';
    }
    if (this.retry.textContent !== line) this.retry.textContent = line;
  }

  render() {
    const latest = [...this.sources.values()].at(-1);
    const text = latest ? latest.text : '';
    if (this.message.textContent !== text) this.message.textContent = text;
    this.area.classList.toggle('active', Boolean(latest));
    this.tick();
  }
}
