// The numbers the docs state, for the node tests to hold the page's code to them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const ROOT = new URL('../../', import.meta.url);

/** The numbers captured by `pattern` (a RegExp source) in `page` (a path from the repository
 * root, e.g. 'docs/live-view.md'), which it must match exactly once. Lines wrap anywhere in a
 * page: match against its text with every run of blanks as one. */
export function documented(page, pattern) {
  const text = readFileSync(new URL(page, ROOT), 'utf8').replace(/\s+/g, ' ');
  const found = [...text.matchAll(new RegExp(pattern, 'g'))];
  assert.equal(found.length, 1, `${page}: /${pattern}/ matched ${found.length} times`);
  return found[0].slice(1).map(Number);
}
