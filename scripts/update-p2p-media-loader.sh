#!/usr/bin/env bash
# Vendors P2P Media Loader (core + hls.js integration) for the viewer's optional P2P mode (issue 22),
# so the page needs no CDN and runs the exact code we tested; proves the copies are the published ones.
#
#   scripts/update-p2p-media-loader.sh         re-download the version recorded in viewer/VENDOR.md and
#                                              check it, and the files in viewer/, against the recorded
#                                              SHA-256s (changes nothing)
#   scripts/update-p2p-media-loader.sh 2.3.2   vendor that version: copy both dist/*.es.min.js files (the
#                                              core patched) and the LICENSE into viewer/ and record
#                                              version, SHA-256s and npm integrity in VENDOR.md's "P2P Media
#                                              Loader" section
#
# The packages ship ES modules only (no UMD). The core file gets scripts/p2p-media-loader-core.patch
# (issue 40; VENDOR.md, "P2P Media Loader: the patch"): a failed or aborted attempt's bytes are dropped,
# a segment is checked once all its bytes are in, and a peer's announced size goes through
# validateP2PSegmentSize. A version the patch does not apply to is refused: review the patch against the
# library's request.ts and peer.ts first. The hls.js integration imports the core by its bare npm name,
# `from "p2p-media-loader-core"`, which a browser resolves only through an import map (an inline script:
# the page's CSP allows none). That one specifier is rewritten to the relative file,
# `from "./p2p-media-loader-core.es.min.js"`; nothing else changes. This script checks each published
# file's SHA-256 and each vendored one's.
#
# npm pack checks each tarball against the registry's sha512 integrity before unpacking it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor_md="$root/viewer/VENDOR.md"
section="## P2P Media Loader"
core_name="p2p-media-loader-core.es.min.js"
hlsjs_name="p2p-media-loader-hlsjs.es.min.js"
license_name="p2p-media-loader-LICENSE.txt"
bare='from "p2p-media-loader-core"'
relative="from \"./$core_name\""

patch_file="$root/scripts/p2p-media-loader-core.patch"

field() {  # the first "- Name: `value`" line of our section of VENDOR.md (empty before the first run)
    [[ -f "$vendor_md" ]] || return 0
    awk -v s="$section" '/^## /{inside = ($0 == s)} inside' "$vendor_md" \
        | sed -n "s/^.*$1: \`\([^\`]*\)\`.*/\1/p" | head -n 1
}

published() {  # the recorded SHA-256 of the published dist file NAME
    [[ -f "$vendor_md" ]] || return 0
    awk -v s="$section" '/^## /{inside = ($0 == s)} inside' "$vendor_md" | grep -F "/dist/$1\`" \
        | sed -n 's/^.*published SHA-256: `\([^`]*\)`.*/\1/p' | head -n 1
}

recorded_version="$(field 'P2P Media Loader version')"
version="${1:-$recorded_version}"
if [[ -z "$version" ]]; then
    echo "usage: $0 [VERSION]   (no version recorded in $vendor_md)" >&2
    exit 2
fi
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "expected a release version like 2.3.1, got '$version'" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for pkg in p2p-media-loader-core p2p-media-loader-hlsjs; do
    mkdir -p "$work/$pkg"
    (cd "$work/$pkg" && npm pack --silent "$pkg@$version" >/dev/null)
    tar -xzf "$work/$pkg/$pkg-$version.tgz" -C "$work/$pkg"
done
core_published="$work/p2p-media-loader-core/package/dist/$core_name"
core="$work/$core_name"
hlsjs_published="$work/p2p-media-loader-hlsjs/package/dist/$hlsjs_name"
hlsjs="$work/$hlsjs_name"
license="$work/p2p-media-loader-core/package/LICENSE"

# The integration must import the core (and nothing else) by its bare name, exactly once.
if [[ "$(grep -c "^import .* $bare;\$" "$hlsjs_published")" != 1 ]] \
    || [[ "$(grep -c '^import ' "$hlsjs_published")" != 1 ]]; then
    echo "FAIL $hlsjs_name $version no longer has exactly one import, $bare: review the rewrite" >&2
    exit 1
fi
sed "s#^\(import .*\) $bare;\$#\1 $relative;#" "$hlsjs_published" >"$hlsjs"
if ! patch --quiet --no-backup-if-mismatch --reject-file=- -o "$core" "$core_published" <"$patch_file" >&2; then
    echo "FAIL scripts/p2p-media-loader-core.patch does not apply to $core_name $version: review it against the" \
        "library's src/requests/request.ts and src/p2p/peer.ts (VENDOR.md, 'P2P Media Loader: the patch')" >&2
    exit 1
fi
if ! cmp -s "$license" "$work/p2p-media-loader-hlsjs/package/LICENSE"; then
    echo "FAIL the two packages' LICENSE files differ: vendor both" >&2
    exit 1
fi

# viewer/p2p.js checks every segment a peer sends against the SHA-256 its playlist lists (issue 31), in
# CoreConfig.validateP2PSegment. The library hands the validator the segment's bytes from 2.1.0 on
# (`validator(url, byteRange, data)`; 2.0.x gave only the URL and byte range), and on a false it drops
# them and destroys that peer connection. A version that does not do both, as the dist file shows it,
# is refused: with it, peers' bytes would reach hls.js unchecked.
if ! grep -qF 'await e(this.segment.url, this.segment.byteRange, this.data)' "$core" \
    || ! grep -qF 'validateData(this.peerConfig.validateP2PSegment)' "$core" \
    || ! grep -qF '"p2p-segment-validation-failed"), this.destroy()' "$core"; then
    echo "FAIL $core_name $version: validateP2PSegment is not seen to get the segment's bytes and to drop them" \
        "and the peer on a failed check; viewer/p2p.js depends on both: review the library's peer.ts and request.ts" >&2
    exit 1
fi
# What the patch must do, as the patched file shows it (issue 40): without it a peer's bytes can reach
# hls.js unchecked (they seed the next attempt), and honest peers get banned for an attacker's bytes.
for needle in 'this.setStatus("aborted"), this.dropAttemptBytes()' 'this.setStatus("failed"), this.dropAttemptBytes()' \
    'validateP2PSegmentSize: void 0' 'this.peerConfig.validateP2PSegmentSize(t.segment.url' \
    't.loadedBytes === t.totalBytes && this.onCommandReceived({'; do
    if ! grep -qF "$needle" "$core"; then
        echo "FAIL the patched $core_name $version lacks '$needle': review scripts/p2p-media-loader-core.patch" >&2
        exit 1
    fi
done
# Fields of the library's own (not exported) that viewer/p2p.js reaches: the segment manager (which
# segments the engine may ask of peers), and the tracker client's peers (to close a banned one). Without
# them p2p.js turns P2P off, or keeps banned peers connected (their segments still checked): warn.
for field in segmentManager updatePlaylist; do
    grep -qF "$field" "$hlsjs" || echo "WARN $hlsjs_name $version has no '$field': viewer/p2p.js will turn P2P off" >&2
done
for field in mainStreamLoader p2pLoaders trackerClient _peers; do
    grep -qF "$field" "$core" || echo "WARN $core_name $version has no '$field': viewer/p2p.js cannot close banned peers" >&2
done
# ...and bittorrent-tracker's tracker objects (viewer/p2p-retoken.js: a private stream's renewed token to
# the tracker connections); without them P2P stops once a viewer's first token ends.
for field in _trackers announceUrl _openSocket reconnecting; do
    grep -qF "$field" "$core" || echo "WARN $core_name $version has no '$field': viewer/p2p-retoken.js cannot renew tracker tokens" >&2
done

sha() { sha256sum "$1" | cut -d ' ' -f 1; }
core_sha="$(sha "$core")"
core_published_sha="$(sha "$core_published")"
published_sha="$(sha "$hlsjs_published")"
hlsjs_sha="$(sha "$hlsjs")"
license_sha="$(sha "$license")"
core_integrity="$(npm view --silent "p2p-media-loader-core@$version" dist.integrity)"
hlsjs_integrity="$(npm view --silent "p2p-media-loader-hlsjs@$version" dist.integrity)"
hls_range="$(cd "$work/p2p-media-loader-hlsjs/package" && node -p 'require("./package.json").devDependencies["hls.js"]')"

if [[ $# -eq 0 ]]; then
    status=0
    check() {  # NAME FETCHED_SHA: the recorded SHA-256 of NAME, the fetched copy and the vendored file agree
        local recorded
        recorded="$(field "-> \`$1\`, SHA-256")"
        if [[ "$2" != "$recorded" ]]; then
            echo "FAIL $1 from npm $version has SHA-256 $2, VENDOR.md records '$recorded'" >&2
            status=1
        fi
        if [[ "$(sha "$root/viewer/$1")" != "$recorded" ]]; then
            echo "FAIL viewer/$1 has SHA-256 $(sha "$root/viewer/$1"), VENDOR.md records '$recorded'" >&2
            status=1
        fi
    }
    check "$core_name" "$core_sha"
    check "$hlsjs_name" "$hlsjs_sha"
    check "$license_name" "$license_sha"
    if [[ "$published_sha" != "$(published "$hlsjs_name")" ]]; then
        echo "FAIL the published $hlsjs_name $version has SHA-256 $published_sha, VENDOR.md records another" >&2
        status=1
    fi
    if [[ "$core_published_sha" != "$(published "$core_name")" ]]; then
        echo "FAIL the published $core_name $version has SHA-256 $core_published_sha, VENDOR.md records another" >&2
        status=1
    fi
    [[ $status -eq 0 ]] && echo "ok   viewer/p2p-media-loader-*.es.min.js are P2P Media Loader $version from npm" \
        "(the core with scripts/p2p-media-loader-core.patch)"
    exit $status
fi

cp "$core" "$root/viewer/$core_name"
cp "$hlsjs" "$root/viewer/$hlsjs_name"
cp "$license" "$root/viewer/$license_name"
new_section="$(cat <<MD
$section

Loaded only when \`P2P_TRACKERS\` is set (viewer/p2p.js imports them; a page without P2P requests neither).

- Packages: \`p2p-media-loader-core\` and \`p2p-media-loader-hlsjs\` (npm, https://github.com/Novage/p2p-media-loader)
- P2P Media Loader version: \`$version\`
- npm integrity: core \`$core_integrity\`, hlsjs \`$hlsjs_integrity\`
- Files (ES modules; the packages ship no UMD build):
  - \`p2p-media-loader-core/package/dist/$core_name\` (published SHA-256: \`$core_published_sha\`) -> \`$core_name\`, SHA-256: \`$core_sha\` (with \`scripts/p2p-media-loader-core.patch\`: "P2P Media Loader: the patch" below)
  - \`p2p-media-loader-hlsjs/package/dist/$hlsjs_name\` (published SHA-256: \`$published_sha\`) -> \`$hlsjs_name\`, SHA-256: \`$hlsjs_sha\` (one change: its only import, \`$bare\`, made \`$relative\`, since the page's CSP allows no inline import map)
  - \`package/LICENSE\` (the same in both) -> \`$license_name\`, SHA-256: \`$license_sha\`
- License: Apache-2.0, notice in \`viewer/$license_name\`
- hls.js: the integration is built and tested against hls.js \`$hls_range\` (its devDependency; it declares
  no peer dependency). The viewer's hls.js 1.7.4 is in that range, and tests/test_p2p_browser.py plays
  through it with P2P on.
- Peers' bytes: the core hands \`validateP2PSegment(url, byteRange, data)\` the whole segment a peer sent
  (from 2.1.0; 2.0.x gave no bytes) and drops it, and that peer's connection, on \`false\`; and
  \`validateHTTPSegment\` the bucket's. viewer/p2p-trust.js checks both against the SHA-256 the playlist
  lists (\`#EXT-HB-SHA256\`, issues 31 and 40); the update script refuses a version whose core does not
  show this, or that the patch does not apply to, and warns when fields of the library's own that p2p.js
  reaches (\`segmentManager\`, the tracker client's \`_peers\`) are gone.

Both files end with a \`sourceMappingURL\` comment; the maps are not vendored.
MD
)"
if [[ -f "$vendor_md" ]] && grep -qxF "$section" "$vendor_md"; then
    # Replace our section (up to the next "## " heading), keep the others (hls.js's) as they are.
    printf '%s\n' "$new_section" >"$work/section.md"
    awk -v s="$section" -v file="$work/section.md" '
        /^## / { inside = ($0 == s) }
        inside && !printed { while ((getline line < file) > 0) print line; print ""; printed = 1 }
        !inside { print }' "$vendor_md" >"$work/VENDOR.md"
    sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$work/VENDOR.md"  # no blank lines at the end
    cp "$work/VENDOR.md" "$vendor_md"
else
    printf '\n%s\n' "$new_section" >>"$vendor_md"
fi
echo "vendored P2P Media Loader $version: $core_name $core_sha, $hlsjs_name $hlsjs_sha"
