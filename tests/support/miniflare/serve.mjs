// deploy/cloudflare-worker/worker.js in workerd through miniflare, with a local R2 bucket seeded from a
// folder (its files' paths below it are the keys) and the Cache API on: for tests/support/edge_worker.py.
// argv: <folder holding node_modules/miniflare> <worker.js> <seed folder> <bindings as JSON>
// Prints {"url": ...} once it serves; stops when its stdin ends.
import { createRequire } from "node:module";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const [installed, script, seed, bindings] = process.argv.slice(2);
const { Miniflare } = createRequire(join(installed, "package.json"))("miniflare");
// As the service stores segments (broadcaster/playlist/hls.py's content types and SEGMENT_CACHE_CONTROL).
const TYPES = { ".ts": "video/mp2t", ".m4s": "video/iso.segment", ".mp4": "video/mp4", ".aac": "audio/aac" };

function* files(folder) {
  for (const name of readdirSync(folder)) {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

const mf = new Miniflare({
  modules: true, scriptPath: script, r2Buckets: ["BUCKET"], bindings: JSON.parse(bindings),
  host: "127.0.0.1", port: 0, compatibilityDate: "2025-12-01",
});
const url = await mf.ready;
const bucket = await mf.getR2Bucket("BUCKET");
for (const path of files(seed)) {
  const key = relative(seed, path);
  const type = TYPES[key.slice(key.lastIndexOf("."))] || "application/octet-stream";
  const bytes = readFileSync(path); // an ArrayBuffer crosses miniflare's proxy; a Node Buffer does not
  await bucket.put(key, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), {
    httpMetadata: { contentType: type, cacheControl: "public, max-age=31536000, immutable" } });
}
process.stdout.write(`${JSON.stringify({ url: url.href })}\n`);
process.stdin.resume();
process.stdin.on("end", async () => { await mf.dispose(); process.exit(0); });
