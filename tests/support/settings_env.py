"""The smallest environment `load_settings` accepts, for tests of the settings: a bucket, its public URL and
Owncast's folder, with a secret no message may show."""

from __future__ import annotations

from pathlib import Path

SECRET = "s3cr3t-value-never-shown"


def env(tmp_path: Path, **over: str) -> dict[str, str]:
    """The required settings (HLS_DIR and STATE_DIR under `tmp_path`), then `over` on top."""
    base = {"HLS_DIR": str(tmp_path), "S3_ENDPOINT_URL": "https://acc.r2.cloudflarestorage.com",
            "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_BUCKET_NAME": "my-bucket",
            "R2_PUBLIC_URL": "https://media.example.com/", "STATE_DIR": str(tmp_path / "state")}
    base.update(over)
    return base
