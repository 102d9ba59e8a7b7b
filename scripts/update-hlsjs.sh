#!/usr/bin/env bash
# Vendors hls.js for the viewer page (no CDN at run time) and proves the copy is the published one.
#
#   scripts/update-hlsjs.sh            re-download the version recorded in viewer/VENDOR.md and check that
#                                      it, and viewer/hls.min.js, match the recorded SHA-256 (changes nothing)
#   scripts/update-hlsjs.sh 1.7.5      vendor that version: copy dist/hls.min.js and its LICENSE into viewer/
#                                      and record the version, SHA-256 and npm integrity in viewer/VENDOR.md
#
# npm pack checks the tarball against the registry's sha512 integrity before unpacking it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor_md="$root/viewer/VENDOR.md"
target="$root/viewer/hls.min.js"

field() {  # the value of a "- Name: `value`" line in VENDOR.md (empty before the first run)
    [[ -f "$vendor_md" ]] || return 0
    sed -n "s/^- $1: \`\([^\`]*\)\`.*/\1/p" "$vendor_md" | head -n 1
}

recorded_version="$(field Version)"
recorded_sha="$(field SHA-256)"
version="${1:-$recorded_version}"
if [[ -z "$version" ]]; then
    echo "usage: $0 [VERSION]   (no version recorded in $vendor_md)" >&2
    exit 2
fi
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "expected a release version like 1.7.4, got '$version'" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "hls.js@$version" >/dev/null)
tar -xzf "$work/hls.js-$version.tgz" -C "$work"
fetched="$work/package/dist/hls.min.js"
fetched_sha="$(sha256sum "$fetched" | cut -d ' ' -f 1)"
integrity="$(cd "$work" && npm view --silent "hls.js@$version" dist.integrity)"

if [[ $# -eq 0 ]]; then
    status=0
    if [[ "$fetched_sha" != "$recorded_sha" ]]; then
        echo "FAIL hls.js $version from npm has SHA-256 $fetched_sha, VENDOR.md records $recorded_sha" >&2
        status=1
    fi
    vendored_sha="$(sha256sum "$target" | cut -d ' ' -f 1)"
    if [[ "$vendored_sha" != "$recorded_sha" ]]; then
        echo "FAIL viewer/hls.min.js has SHA-256 $vendored_sha, VENDOR.md records $recorded_sha" >&2
        status=1
    fi
    [[ $status -eq 0 ]] && echo "ok   viewer/hls.min.js is hls.js $version from npm (SHA-256 $recorded_sha)"
    exit $status
fi

cp "$fetched" "$target"
cp "$work/package/LICENSE" "$root/viewer/hls.js-LICENSE.txt"
# The sections after hls.js's (P2P Media Loader: scripts/update-p2p-media-loader.sh) are kept as they are.
others=""
[[ -f "$vendor_md" ]] && others="$(awk '/^## /{keep = ($0 != "## hls.js")} keep' "$vendor_md")"
cat >"$vendor_md" <<MD
# Vendored files

The viewer serves its own copy of hls.js, so the page needs no CDN and runs the exact code we tested.
Update or verify it with \`scripts/update-hlsjs.sh [VERSION]\` (without a version it re-downloads the
recorded one and checks both copies against the SHA-256 below; \`tests/test_deploy.py\` checks the file).

## hls.js

- Package: \`hls.js\` (npm, https://github.com/video-dev/hls.js)
- Version: \`$version\`
- File: \`package/dist/hls.min.js\` -> \`viewer/hls.min.js\` (byte for byte, not rebuilt)
- SHA-256: \`$fetched_sha\`
- npm integrity: \`$integrity\`
- License: Apache-2.0, notice in \`viewer/hls.js-LICENSE.txt\`

The file ends with a \`sourceMappingURL\` comment; the map is not vendored, so browser devtools show
minified code (nothing is requested unless devtools are open).
MD
[[ -n "$others" ]] && printf '\n%s\n' "$others" >>"$vendor_md"
echo "vendored hls.js $version: viewer/hls.min.js SHA-256 $fetched_sha"
