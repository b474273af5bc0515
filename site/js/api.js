// The API on the same origin: relative URLs, so the page works locally and behind CloudFront.

export const CLASSES = [
  'Anger', 'Disgust', 'Surprise', 'Sadness', 'Happiness', 'Neutral', 'Contempt', 'Fear',
];

// How long each request may take before the page gives up on it and says so. A face crop is
// tens of ms on the server; a photo up to a second or two; the rest is the network.
export const TIMEOUT_MS = { face: 10_000, faces: 30_000, health: 10_000 };

// Statuses that mean "busy, try again", not "broken": throttled (429, API Gateway and the
// WAF), the server's full queue (503 `busy`), a gateway timeout (504). A throttled Lambda
// never runs, so API Gateway answers for it, with a 5xx and its own `{"message": ...}` body
// (the function's errors carry `error`): that reads as busy too.
const BUSY = new Set([429, 503, 504]);

export class ApiError extends Error {
  constructor(message, { status = 0, code = 'unreachable' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  get busy() {
    return BUSY.has(this.status) || (this.status >= 500 && this.code === 'gateway');
  }
}

async function readError(response) {
  let code = `http_${response.status}`;
  let detail = `The server answered ${response.status} ${response.statusText}`.trim() + '.';
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') code = body.error;
    else if (body && typeof body.message === 'string') code = 'gateway'; // API Gateway's own
    if (body && typeof body.detail === 'string') detail = body.detail;
  } catch {
    // Not JSON (a proxy's error page, say): keep the status line.
  }
  return new ApiError(detail, { status: response.status, code });
}

async function send(url, { signal, timeoutMs, ...init }) {
  // The caller's signal (a superseded request) and the timeout, whichever fires first.
  const timeout = AbortSignal.timeout(timeoutMs);
  let response;
  try {
    response = await fetch(url, {
      cache: 'no-store', ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (err) {
    if (timeout.aborted && !(signal && signal.aborted)) {
      throw new ApiError(`The server did not answer within ${timeoutMs / 1000} s.`, {
        code: 'timeout',
      });
    }
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('The server cannot be reached.', { code: 'unreachable' });
  }
  if (!response.ok) throw await readError(response);
  try {
    return await response.json();
  } catch {
    throw new ApiError('The server sent an answer that is not JSON.', {
      status: response.status, code: 'bad_response',
    });
  }
}

/** POST one face crop (a data URL) in the seed's format; resolves to the ranked probabilities. */
export async function classify(dataUrl, { signal } = {}) {
  const started = performance.now();
  const body = await send('face', {
    method: 'POST',
    body: new URLSearchParams({ imgBase64: dataUrl }),
    signal,
    timeoutMs: TIMEOUT_MS.face,
  });
  const predictions = body && body.predictions;
  if (!predictions || CLASSES.some((name) => typeof predictions[name] !== 'number')) {
    throw new ApiError('The server answered without the eight emotion probabilities.', {
      code: 'bad_response',
    });
  }
  // `face`: the server's check that the crop holds a face (absent from older servers).
  return { predictions, face: body.face, rtt: performance.now() - started };
}

/**
 * POST a whole photo to /faces (the server finds every face); resolves to its answer:
 * { faces: [{ box, score, predictions, top }], image: { width, height }, ... }, boxes in the
 * pixels of the image as sent.
 */
export async function classifyPhoto(blob, { signal, maxFaces = 20 } = {}) {
  const body = await send(`faces?max_faces=${maxFaces}`, {
    method: 'POST',
    headers: { 'Content-Type': blob.type },
    body: blob,
    signal,
    timeoutMs: TIMEOUT_MS.faces,
  });
  if (!body || !Array.isArray(body.faces) || !body.image) {
    throw new ApiError('The server answered without a list of faces.', { code: 'bad_response' });
  }
  for (const face of body.faces) {
    const p = face && face.predictions;
    if (!face.box || !p || CLASSES.some((name) => typeof p[name] !== 'number')) {
      throw new ApiError('The server answered a face without its box or probabilities.', {
        code: 'bad_response',
      });
    }
  }
  return body;
}

export function health({ signal } = {}) {
  return send('health', { method: 'GET', signal, timeoutMs: TIMEOUT_MS.health });
}

/**
 * Exponential backoff shared by every request: after a failure nothing is sent until the
 * wait is over; each further failure doubles the wait (with a little jitter), a success resets it.
 */
export class Backoff {
  constructor({ first = 500, max = 8000 } = {}) {
    this.first = first;
    this.max = max;
    this.delay = 0;
    this.until = 0;
    this.failures = 0;
  }

  ready(now = performance.now()) {
    return now >= this.until;
  }

  remaining(now = performance.now()) {
    return Math.max(0, this.until - now);
  }

  fail(now = performance.now()) {
    this.failures += 1;
    this.delay = this.delay ? Math.min(this.max, this.delay * 2) : this.first;
    const jitter = this.delay * 0.2 * Math.random();
    this.until = now + this.delay + jitter;
    return this.until - now;
  }

  succeed() {
    const hadFailed = this.failures > 0;
    this.delay = 0;
    this.until = 0;
    this.failures = 0;
    return hadFailed;
  }
}

/** Explain an error to a person, in one sentence. */
export function describe(err) {
  if (err && err.onDevice) return err.message; // ondevice.js: nothing was asked of the server
  if (err instanceof ApiError) {
    if (err.code === 'unreachable') return 'The server cannot be reached.';
    if (err.code === 'timeout') return err.message;
    if (err.busy) return 'The service is busy; retrying shortly.';
    if (err.status >= 500) return `The server had a problem (${err.status}).`;
    return `The server refused the image: ${err.message}`;
  }
  return 'Something went wrong while asking the server.';
}
