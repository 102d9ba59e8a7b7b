// A private stream's segments on Cloudflare's Free plan (where the WAF's is_timed_hmac_valid_v0 is not
// offered): every GET under the stream's prefix must carry the edge token hls-broadcaster writes into
// segment URIs (?verify=<ts>-<URL-encoded base64 HMAC-SHA256 of prefix + ts>), checked as that WAF
// function checks it; then the object comes from the R2 binding through the Cache API, keyed by the URL
// without its query, so every viewer and every window's token share one cache entry per segment.
//
// Bindings (wrangler.toml): BUCKET (R2), EDGE_KEY (secret: `hls-broadcaster edge-rules` prints it),
// PREFIX (the signed path prefix, e.g. "/live/"), TTL (seconds a token is accepted), PUBLIC_PATH (the
// path before the bucket's keys on this host, "" for a host of its own).

const SEPARATOR = "?verify=";
const TIMESTAMP_DIGITS = 10;
const MAC_BYTES = 32;
const MAX_TEXT_CHARS = 2048;
// Marks every answer of this Worker, so `hls-broadcaster check` can tell which recipe guards the bucket.
const MARK = { "x-hls-broadcaster-edge": "worker" };
// As deploy/r2-cors.json lets the bucket answer viewer pages on any origin (the binding bypasses it).
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "content-length, content-range, etag, x-cache",
};
const encoder = new TextEncoder();
const keys = new Map(); // the imported HMAC key per secret text: imported once per isolate

function refused(why) {
  return new Response(`${why}\n`, {
    status: 403,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...MARK, ...CORS },
  });
}

async function hmacKey(secret) {
  let key = keys.get(secret);
  if (key === undefined) {
    key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" },
      false, ["verify"]);
    keys.set(secret, key);
  }
  return key;
}

function base64Bytes(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const raw = atob(text);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// is_timed_hmac_valid_v0(secret, text, ttl, now, separatorLength), as broadcaster/edge_token.py's
// `valid`: "" when valid, else why not (a word for the 403's body).
export async function judge(secret, text, ttl, now, separatorLength) {
  if (text.length > MAX_TEXT_CHARS) return "not a token";
  const dash = text.lastIndexOf("-");
  if (dash < 0) return "no token";
  const head = text.slice(0, dash);
  const stamp = head.slice(-TIMESTAMP_DIGITS);
  const messageLength = head.length - TIMESTAMP_DIGITS - separatorLength;
  const message = head.slice(0, Math.max(messageLength, 0));
  const encoded = text.slice(dash + 1);
  if (!/^\d{10}$/.test(stamp) || message.length === 0 || encoded.length < 43) return "not a token";
  let mac;
  try {
    mac = base64Bytes(decodeURIComponent(encoded));
  } catch {
    mac = null; // a malformed %-escape
  }
  if (mac === null || mac.length !== MAC_BYTES) return "not a token";
  // crypto.subtle.verify compares in constant time.
  const signed = await crypto.subtle.verify("HMAC", await hmacKey(secret), mac, encoder.encode(message + stamp));
  if (!signed) return "bad token";
  return now < Number(stamp) + ttl ? "" : "expired token";
}

function answer(object, body, status, extra) {
  const headers = new Headers();
  object.writeHttpMetadata(headers); // content-type, cache-control, ... as stored
  headers.set("etag", object.httpEtag);
  headers.set("accept-ranges", "bytes");
  for (const [name, value] of Object.entries(extra)) headers.set(name, value);
  return new Response(body, { status, headers });
}

function marked(response, cache, head) {
  const out = new Response(head ? null : response.body, response);
  for (const [name, value] of Object.entries({ ...MARK, ...CORS, "x-cache": cache })) out.headers.set(name, value);
  return out;
}

async function fromBucket(request, env, ctx, url, cacheKey) {
  let key;
  try {
    key = decodeURIComponent(url.pathname.slice((env.PUBLIC_PATH || "").length + 1));
  } catch {
    return null; // a malformed %-escape names no object
  }
  const range = request.headers.get("range");
  if (range !== null) {
    // A part of a segment missing from the cache: read that part, not cached (a whole GET fills it).
    const part = await env.BUCKET.get(key, { range: request.headers });
    if (part === null) return null;
    const { offset = 0, length = part.size } = part.range || {};
    return answer(part, part.body, 206, {
      "content-range": `bytes ${offset}-${offset + length - 1}/${part.size}`,
      "content-length": String(length),
    });
  }
  const object = await env.BUCKET.get(key);
  if (object === null) return null;
  const response = answer(object, object.body, 200, { "content-length": String(object.size) });
  ctx.waitUntil(caches.default.put(cacheKey, response.clone()));
  return response;
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (request.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: { ...MARK, ...CORS, "access-control-allow-methods": "GET, HEAD",
          "access-control-allow-headers": "range", "access-control-max-age": "86400" },
      });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("GET or HEAD\n", { status: 405, headers: { allow: "GET, HEAD", ...MARK, ...CORS } });
    }
    const prefix = env.PREFIX || "/";
    if (!url.pathname.startsWith(prefix)) return refused("not a stream's object");
    // The text the WAF rule checks: concat(prefix, "?", http.request.uri.query).
    const why = await judge(env.EDGE_KEY, `${prefix}?${url.search.slice(1)}`, Number(env.TTL),
      Math.floor(Date.now() / 1000), SEPARATOR.length);
    if (why) return refused(why);
    const head = request.method === "HEAD";
    const cacheKey = new Request(`${url.origin}${url.pathname}`); // without the token
    const lookup = new Request(cacheKey.url, { headers: request.headers.has("range")
      ? { range: request.headers.get("range") } : {} });
    const hit = await caches.default.match(lookup);
    if (hit !== undefined) return marked(hit, "HIT", head);
    const got = await fromBucket(request, env, ctx, url, cacheKey);
    if (got === null) {
      return new Response("not found\n", { status: 404, headers: { "cache-control": "no-store", ...MARK, ...CORS } });
    }
    return marked(got, "MISS", head);
  },
};
