-- Viewers for bench/edge.py, run by wrk 4.1 (Debian's, with LuaJIT). One Lua state per wrk thread.
--
-- EDGE_MODE=blocking: like hls.js with blocking reload. A connection first GETs the plain playlist, then
--   asks `?_HLS_msn=<last listed + 1>[&_HLS_skip=YES]` as soon as it has an answer.
-- EDGE_MODE=poll: GET the plain playlist, wait EDGE_POLL_MS (+-20 %, so the connections spread out), again.
-- EDGE_SKIP=1 adds _HLS_skip=YES (a delta update, as hls.js asks when the playlist offers them).
--
-- Requests say `Accept-Encoding: gzip`, as browsers do; the answer is inflated here (zlib through
-- LuaJIT's FFI) to read its last media sequence number.
--
-- wrk tells response() nothing about the connection, and a connection's next request() comes in a
-- later turn of the event loop, after other connections' responses. So the "next msn" of each answer
-- goes into a first-in first-out queue that request() takes from: every answer yields exactly one
-- next request, and two connections whose answers arrive in the same turn may swap their next
-- requests (both then ask for the segment after one they were given: the same one, in steady state).
--
-- Counted per wall-clock second (answers, answers with status >= 400) so that bench/edge.py can take
-- the figures over its measurement window; done() prints them as `EDGE <second> <answers> <bad>`.

local ffi = require("ffi")

local mode = os.getenv("EDGE_MODE") or "blocking"
local skip = os.getenv("EDGE_SKIP") == "1"
local poll_ms = tonumber(os.getenv("EDGE_POLL_MS") or "500")

ffi.cdef [[
typedef struct z_stream_s {
  const unsigned char *next_in; unsigned int avail_in; unsigned long total_in;
  unsigned char *next_out; unsigned int avail_out; unsigned long total_out;
  const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
  int data_type; unsigned long adler; unsigned long reserved;
} z_stream;
int inflateInit2_(z_stream *strm, int windowBits, const char *version, int stream_size);
int inflate(z_stream *strm, int flush);
int inflateReset(z_stream *strm);
const char *zlibVersion(void);
]]
local zlib = ffi.load("z")
local stream = ffi.new("z_stream")
local out_size = 1024 * 1024
local out = ffi.new("unsigned char[?]", out_size)
assert(zlib.inflateInit2_(stream, 31, zlib.zlibVersion(), ffi.sizeof("z_stream")) == 0)  -- 31: gzip

local function gunzip(data)
  zlib.inflateReset(stream)
  stream.next_in, stream.avail_in = data, #data
  stream.next_out, stream.avail_out = out, out_size
  if zlib.inflate(stream, 4) ~= 1 then  -- Z_FINISH; 1 = Z_STREAM_END
    return nil
  end
  return ffi.string(out, out_size - stream.avail_out)
end

-- The last media sequence number a (full or delta) media playlist lists.
local function last_sequence(text)
  local first = text:match("#EXT%-X%-MEDIA%-SEQUENCE:(%d+)")
  if not first then
    return nil
  end
  local _, segments = text:gsub("#EXTINF", "")
  local skipped = tonumber(text:match("#EXT%-X%-SKIP:SKIPPED%-SEGMENTS=(%d+)") or "0")
  return tonumber(first) + skipped + segments - 1
end

local queue, head, tail = {}, 1, 0
answers, bad, unread = {}, {}, 0  -- globals: done() reads them from each thread

local plain = "GET " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.host .. "\r\nAccept-Encoding: gzip\r\n\r\n"
local blocking_format = "GET " .. wrk.path .. "?_HLS_msn=%d" .. (skip and "&_HLS_skip=YES" or "")
  .. " HTTP/1.1\r\nHost: " .. wrk.host .. "\r\nAccept-Encoding: gzip\r\n\r\n"

function request()
  if head <= tail then
    local msn = queue[head]
    queue[head] = nil
    head = head + 1
    if msn then
      return string.format(blocking_format, msn)
    end
  end
  return plain  -- a new connection, a poll, or starting over after an error
end

-- Every connection's first request waits a random part of a period (the poll interval; a segment,
-- 1 s, for blocking viewers), as an audience joins at random moments. That phase matters behind
-- nginx's cache lock: a waiting request checks the lock every 500 ms from when it arrived, and a
-- blocking viewer arrives when it got its previous answer, so it keeps its phase. All connections
-- open together at the start; delay() is called once per connection before its first request.
local first_delays = tonumber(os.getenv("EDGE_CONNECTIONS_PER_THREAD") or "0")
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)

function delay()
  if first_delays > 0 then
    first_delays = first_delays - 1
    return math.random(0, mode == "poll" and poll_ms or 1000)
  end
  if mode == "poll" then
    return math.random(math.floor(poll_ms * 0.8), math.floor(poll_ms * 1.2))
  end
  return 0
end

function response(status, headers, body)
  local second = os.time()
  answers[second] = (answers[second] or 0) + 1
  local next_msn = false
  if status >= 400 then
    bad[second] = (bad[second] or 0) + 1
  elseif mode == "blocking" and status == 200 then
    local text = body
    if headers["Content-Encoding"] == "gzip" then
      text = gunzip(body)
    end
    local last = text and last_sequence(text)
    if last then
      next_msn = last + 1
    else
      unread = unread + 1
    end
  end
  if mode == "blocking" then
    tail = tail + 1
    queue[tail] = next_msn
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total_answers, total_bad, total_unread = {}, {}, 0
  for _, thread in ipairs(threads) do
    for second, n in pairs(thread:get("answers")) do
      total_answers[second] = (total_answers[second] or 0) + n
    end
    for second, n in pairs(thread:get("bad")) do
      total_bad[second] = (total_bad[second] or 0) + n
    end
    total_unread = total_unread + thread:get("unread")
  end
  for second, n in pairs(total_answers) do
    io.write(string.format("EDGE %d %d %d\n", second, n, total_bad[second] or 0))
  end
  io.write(string.format("EDGE-UNREAD %d\n", total_unread))
end
