// Face detection off the main thread: tracking.js's Viola-Jones on the pixels it is sent.
// A classic worker, because tracking.js is a classic script that expects `window`.
/* global tracking, importScripts */
self.window = self;
importScripts('../vendor/tracking-min.js', '../vendor/face-min.js');

let tracker = null;
let found = [];

function getTracker(options) {
  if (!tracker) {
    tracker = new tracking.ObjectTracker('face');
    tracker.on('track', (event) => {
      found = event.data;
    });
  }
  tracker.setInitialScale(options.initialScale);
  tracker.setStepSize(options.stepSize);
  tracker.setEdgesDensity(options.edgesDensity);
  if (options.scaleFactor) tracker.setScaleFactor(options.scaleFactor);
  return tracker;
}

self.onmessage = (event) => {
  const { id, buffer, width, height, options } = event.data;
  const started = performance.now();
  found = [];
  try {
    getTracker(options).track(new Uint8ClampedArray(buffer), width, height);
    const boxes = found.map((r) => ({
      x: r.x, y: r.y, width: r.width, height: r.height, total: r.total || 1,
    }));
    self.postMessage({ id, boxes, ms: performance.now() - started, buffer }, [buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err && err.message ? err.message : err) });
  }
};
