// The live view's send-rate cap: at most MAX_REQUESTS_PER_SECOND face crops leave the page each
// second, all faces together. The stack is sized from this very number (infra/config.py reads
// it): its API throttle allows concurrentViewers x this rate, and WAF's per-client rule
// PAGES_PER_CLIENT x this rate per minute. Raise it and the stack's limits follow. 20/s keeps
// one face at the 15+ predictions/s of issue 13 (one request in flight per face is usually the
// tighter bound); three faces share it instead of sending 3 x 30/s.

export const MAX_REQUESTS_PER_SECOND = 20;

/** A token bucket: `take()` succeeds at most `perSecond` times a second, in bursts of `burst`. */
export class SendRate {
  constructor({ perSecond = MAX_REQUESTS_PER_SECOND, burst = 1 } = {}) {
    this.interval = 1000 / perSecond;
    this.burst = burst;
    this.tokens = burst;
    this.at = -Infinity;
  }

  refill(now) {
    if (this.at === -Infinity) this.at = now;
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) / this.interval);
    this.at = now;
  }

  /** Whether a request may go now. */
  ready(now = performance.now()) {
    this.refill(now);
    return this.tokens >= 1;
  }

  /** Spend one request's token; false (and nothing spent) when none is left. */
  take(now = performance.now()) {
    if (!this.ready(now)) return false;
    this.tokens -= 1;
    return true;
  }
}
