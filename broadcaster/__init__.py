"""hls-broadcaster: Owncast's live HLS, moved onto Cloudflare R2."""

__version__ = "0.1.0"
