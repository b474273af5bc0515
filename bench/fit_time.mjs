// How long the page's fit takes: fitPersonal on a person of 8 expressions, k frames each, that
// the model reads as Neutral with a different mix of the rest per expression (the map's case:
// both kinds are fitted and cross-validated). Median of 15 runs after 3 warm-ups; then the
// page's case, a first fit in a fresh process (10 frames per expression), without and after
// warmUpFit (which the page runs while the person poses), median of 7 processes each.
//
//     node bench/fit_time.mjs
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLASSES, fitPersonal, warmUpFit } from '../site/js/personal.js';

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

const mode = process.argv[2];
if (mode) {
  // One first fit in this fresh process: its milliseconds on stdout.
  if (mode === 'warmed') warmUpFit();
  const samples = frames(10);
  const t = performance.now();
  fitPersonal(samples);
  console.log((performance.now() - t).toFixed(1));
  process.exit(0);
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

const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const first of ['cold', 'warmed']) {
  const ms = Array.from({ length: 7 }, () => Number(execFileSync(
    process.execPath, [fileURLToPath(import.meta.url), first], { encoding: 'utf8' },
  )));
  const how = first === 'cold' ? 'first fit of a fresh page' : 'first fit after warmUpFit';
  console.log(`${how} (80 frames): ${median(ms).toFixed(1)} ms median of 7`);
}
