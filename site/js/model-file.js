// Model files for the on-device worker: a manifest (tools/site_model.py) names a content-hashed
// file, its size and SHA-256. Each file is fetched once, checked against its SHA-256, and kept
// in Cache Storage under its hashed name, so a later visit (or an offline one) reads it from
// disk. Several files download together behind one progress figure.

export async function sha256(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function readManifest(url) {
  const response = await fetch(url, { cache: 'no-cache' });
  if (!response.ok) throw new Error(`The model description could not be read (${response.status}).`);
  return response.json();
}

/** The whole body; `onBytes(received)` as it arrives. */
async function download(url, expected, onBytes) {
  const response = await fetch(url, { cache: 'no-cache' });
  if (!response.ok) throw new Error(`The model could not be downloaded (${response.status}).`);
  const total = Number(response.headers.get('Content-Length')) || expected;
  const reader = response.body.getReader();
  const bytes = new Uint8Array(total);
  let received = 0;
  let chunks = null; // only if the server sent more than announced
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!chunks && received + value.length <= total) bytes.set(value, received);
    else (chunks ||= [bytes.slice(0, received)]).push(value);
    received += value.length;
    onBytes(received);
  }
  if (!chunks) return bytes.subarray(0, received);
  const all = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}

async function openCache(name) {
  return self.caches ? caches.open(name).catch(() => null) : null;
}

/**
 * The bytes of each model: `models` are {manifest, url (of the manifest), cache (a Cache
 * Storage name of its own)}. Cached files are read from disk; the others download in parallel,
 * `onProgress({received, total})` summed over them. Returns [{bytes, cached}] in order.
 */
export async function modelFiles(models, onProgress) {
  const plan = await Promise.all(models.map(async ({ manifest, url, cache: name }) => {
    const file = new URL(manifest.file, url).href;
    const cache = await openCache(name);
    // Stored only after its checksum matched, under a name that holds that checksum.
    const hit = cache ? await cache.match(file) : null;
    return { manifest, file, cache, hit };
  }));
  const missing = plan.filter((p) => !p.hit);
  const total = missing.reduce((sum, p) => sum + p.manifest.bytes, 0);
  const received = new Map();
  const report = () => onProgress({
    received: [...received.values()].reduce((a, b) => a + b, 0), total,
  });
  return Promise.all(plan.map(async ({ manifest, file, cache, hit }) => {
    if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), cached: true };
    const bytes = await download(file, manifest.bytes, (n) => {
      received.set(file, n);
      report();
    });
    if ((await sha256(bytes)) !== manifest.sha256) {
      throw new Error('The downloaded model is damaged (its checksum does not match).');
    }
    if (cache) {
      // Older copies (other hashed names) are dropped: one copy on disk at a time.
      for (const old of await cache.keys()) if (old.url !== file) await cache.delete(old);
      const headers = { 'Content-Type': 'application/octet-stream' };
      await cache.put(file, new Response(bytes, { headers })).catch(() => {});
    }
    return { bytes, cached: false };
  }));
}
