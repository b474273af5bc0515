// How long the page's fit takes: fitPersonal on a person of 8 expressions, k frames each, that
// the model reads as Neutral with a different mix of the rest per expression (the map's case:
// both kinds are fitted and cross-validated). Median of 15 runs after 3 warm-ups.
//
//     node bench/fit_time.mjs
import { CLASSES, fitPersonal } from '../site/js/personal.js';

let seed = 7;
const random = () => { // a small fixed generator: the same frames every run
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const look = CLASSES.map(() => CLASSES.map((name) => (name === 'Neutral' ? 4 : 0) + 3 * (random() - 0.5)));

function frames(k) {
  return CLASSES.flatMap((label, c) => Array.from({ length: k }, () => {
    const z = look[c].map((v) => v + 0.6 * (random() - 0.5));
    const e = z.map(Math.exp);
    const sum = e.reduce((a, b) => a + b, 0);
    return { predictions: Object.fromEntries(CLASSES.map((name, j) => [name, e[j] / sum])), label };
  }));
}

for (const k of [3, 10, 45]) {
  const samples = frames(k);
  const ms = [];
  let kind = '';
  for (let i = 0; i < 18; i += 1) {
    const t = performance.now();
    kind = fitPersonal(samples).kind;
    if (i >= 3) ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  console.log(`${k} frames per expression (${8 * k}): ${ms[7].toFixed(1)} ms median, ${kind}`);
}
