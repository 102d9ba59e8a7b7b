"""What each route of the public app answers, as the documentation's endpoints reference shows it
(docs/reference/endpoints.md is written from the app's routes and these when the site is built). Keyed by
the route's path as aiohttp formats it, or "METHOD path" where one method of a path says more; a route
without an entry fails the docs' build, an entry without a route fails tests/test_docs_site.py."""

from __future__ import annotations

ROUTE_DOCS: dict[str, str] = {
    "/live/master.m3u8": "multivariant playlist from Owncast's `stream.m3u8` (BANDWIDTH, RESOLUTION, CODECS "
        "kept; relative variant URIs)",
    "/live/playlist.m3u8": "media playlist of variant 0",
    "/live/{n}/playlist.m3u8": "media playlist of variant n; `?_HLS_msn=N` holds the request until segment "
        "N is listed (blocking reload), `?_HLS_skip=YES` answers with a delta update",
    "/hls/stream.m3u8": "Owncast's path for the multivariant playlist: the same as `/live/master.m3u8`, "
        "naming its variants `0/stream.m3u8`, `1/stream.m3u8`... as Owncast does, so Owncast's own page "
        "plays it; see [Keep Owncast's page and chat](../owncast-settings.md#keep-owncasts-page-and-chat)",
    "/hls/{n}/stream.m3u8": "Owncast's path for variant n: the same playlist as `/live/{n}/playlist.m3u8` "
        "(blocking reload, delta updates, ETag, gzip, CORS alike). A query the service does not use "
        "(Owncast's pages add `?cachebust=<random>`) is a `302` to the same playlist without it; see "
        "[Limits](../limits.md#limits)",
    "/live/steering.json": "the steering manifest players with content steering reload every `TTL` seconds "
        "(JSON: `VERSION`, `TTL` (half a target duration), `RELOAD-URI`, `PATHWAY-PRIORITY`: `bucket` "
        "first, or `vm` while the bucket fails); their query (`_HLS_pathway`, `_HLS_throughput`) changes "
        "nothing in the answer; `410` with `PATHWAYS=bucket` (a player holding an older multivariant "
        "playlist stops asking); see [Steering](../steering.md#steering)",
    "/hls/steering.json": "the same steering manifest, beside Owncast's path for the multivariant playlist",
    "/live/vm/{n}/playlist.m3u8": "the VM pathway's media playlist of variant n: the same numbers, "
        "durations and discontinuities as `/live/{n}/playlist.m3u8`, every segment the VM has kept listed "
        "at once, each at `/live/vm/{n}/<file>` (blocking reload and delta updates alike); see "
        "[Steering](../steering.md#steering)",
    "/hls/vm/{n}/stream.m3u8": "the same, at Owncast's paths (the multivariant playlist at "
        "`/hls/stream.m3u8` names it)",
    "/live/backup/{n}/playlist.m3u8": "the second bucket's pathway (`PATHWAYS` naming `backup`): variant "
        "n's media playlist with the same numbers, durations and discontinuities as "
        "`/live/{n}/playlist.m3u8`, listing a segment only once its upload to the second bucket landed, "
        "each at `BACKUP_PUBLIC_URL/<key>` (blocking reload and delta updates alike); see "
        "[Steering](../steering.md#a-second-bucket)",
    "/hls/backup/{n}/stream.m3u8": "the same, at Owncast's paths (the multivariant playlist at "
        "`/hls/stream.m3u8` names it)",
    "/{folder}/vm/{n}/{file}": "a segment of the VM's own copy, for players steered to the VM: only a file "
        "a VM playlist listed (`404` else), `Cache-Control` as the bucket's objects (immutable), `ETag`, "
        "`Last-Modified`, `304` to `If-None-Match`, one byte `Range`; with a query, a `302` to the URL "
        "without it; while the bucket serves, a `302` (`no-store`) to the bucket's copy (the bytes, at most "
        "one stream's bitrate, to an address whose page reported failing on the bucket); `503` with "
        "`Retry-After` past `VM_SEGMENT_MBPS`, the client's share of it or the answers in flight; see [What "
        "a client can cost](../steering.md#what-a-client-can-cost)",
    "/live/access": "with `PRIVATE=true`: a viewer token for `{\"passphrase\": ...}`, `{\"invite\": <an "
        "invite link's token>}` or `{\"token\": <a valid token>}` (renewal): `200 {\"token\", "
        "\"expires\"}`, or `{\"error\"}` with `403` (wrong pass-phrase, an invite expired, revoked or not "
        "valid), `400` or `429` (a client's failed attempts are bounded); every stream door then asks for "
        "it as `?access=` or `Authorization: Bearer`, see [Private "
        "streams](../private-streams.md#private-streams)",
    "/live/clips/{id}/master.m3u8": "with `PRIVATE=true`: a clip's multivariant playlist (`hls-broadcaster "
        "clip` prints this path), behind the gate like every stream door, its variant URIs carrying the "
        "viewer's `access=`; `404` past the gate when no such clip is kept; see [Clips and recordings of a "
        "private stream](../private-streams.md#clips-and-recordings)",
    "/live/clips/{id}/{n}/playlist.m3u8": "with `PRIVATE=true`: a clip's VOD playlist of variant n, each "
        "segment listed at its bucket URL with the current window's edge token (the same bytes for every "
        "viewer of a window) or presigned",
    "/live/recording-{run}.m3u8": "with `PRIVATE=true` and `KEEP_RECORDINGS=true`: a stream's recording, "
        "its multivariant playlist, behind the gate as a clip's",
    "/live/{n}/recording-{run}.m3u8": "with `PRIVATE=true` and `KEEP_RECORDINGS=true`: a recording's VOD "
        "playlist of variant n, its segments listed as a clip's",
    "/live/events": "Server-Sent Events for dashboards: `segment` per segment listed (variant, media "
        "sequence, duration, URL) and `state` per change (`online`/`offline`/`degraded`); resumes from "
        "`Last-Event-ID` (or `?lastEventId=`). Open streams are capped (a quarter of the connection cap, at "
        "most 1000, and an eighth of that per client address; 503 with `Retry-After` beyond: see "
        "[Limits](../limits.md#limits)); see [Events](../low-latency.md#events)",
    "/health": "JSON: `status` (`ok` or the reasons it is not), `stream` (`idle`/`live`/`ended`), "
        "per-variant window, seconds since the last segment, uploads done/failed, queue depth, storage "
        "reachable. 200 when ok, 503 when not",
    "/metrics": "Prometheus metrics, all named `hls_broadcaster_*`",
    "/": "the hls.js viewer (`?src=<playlist URL>` plays another of this service's playlists, or one of a "
        "site `VIEWER_SOURCES` allows, a VOD one (a clip) from its start; `?stats=1` opens the stats "
        "panel); see [The viewer's files](../viewers.md#the-viewers-files)",
    "/config.json": "where the viewer finds the stream: `live/master.m3u8`, or the bucket's master with "
        "`PUBLISH_PLAYLISTS=true`; the page's heartbeat interval, the playback report's version, and "
        "Owncast's ping and playback report URLs. The page at `/` carries the same in it, so it starts "
        "without asking; see [The viewer's files](../viewers.md#the-viewers-files)",
    "/embed": "the viewer's embed form: the video and its controls, nothing else; see [Embedding the "
        "player](../viewers.md#embedding-the-player)",
    "/live/watching": "the viewer page's heartbeat while it plays, its random id in the header "
        "`Hb-Watching: <page id>` (`<page id> p2p` with P2P on and chosen, `<page id> leave` on pause or "
        "close); answers `{\"watching\": N}` (204 with `SHOW_VIEWER_COUNT=false`, 429 when not counted), "
        "with P2P on also `\"sharing\": M` (the pages that share: P2P starts at `P2P_MIN_VIEWERS`); with a "
        "playback report in `Hb-Report`, `{\"watching\": N, \"now\": <ms>}` (`\"taken\": 0` when too soon; "
        "400 when malformed); with content steering, `Hb-Pathway: <pathway> <pathway>=<failed fetches> ...` "
        "(a claim: it moves nobody, see [What a client can cost](../steering.md#what-a-client-can-cost)); "
        "see [Viewers watching](../viewers.md#viewers-watching) and [How viewers' playback "
        "fares](../viewers.md#how-viewers-playback-fares)",
    "OPTIONS /live/watching": "the heartbeat's CORS preflight: always refused (403, no CORS header), so no "
        "browser sends another site's beat; see [Viewers watching](../viewers.md#viewers-watching)",
    "/{file}": "the viewer page's other files (its scripts, stylesheet, hls.js and P2P Media Loader), under "
        "versioned URLs (`?v=<hash>`, cached for a year); an old version is a `302` to the current one; see "
        "[The viewer's files](../viewers.md#the-viewers-files)",
    "/{tail}": "anything else: `404` (`405` where a GET would be answered); a CORS preflight is answered "
        "for every path but the heartbeat's",
}
