// The numbers README.md states, for the node tests to hold the page's code to them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

// Lines wrap anywhere in the README: match against its text with every run of blanks as one.
const TEXT = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');

/** The numbers captured by `pattern` (a RegExp source), which must match exactly once. */
export function readme(pattern) {
  const found = [...TEXT.matchAll(new RegExp(pattern, 'g'))];
  assert.equal(found.length, 1, `README: /${pattern}/ matched ${found.length} times`);
  return found[0].slice(1).map(Number);
}
