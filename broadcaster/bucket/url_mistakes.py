"""Mistakes in the bucket's URLs that per-value checks cannot see (`check` fails, `run` will not start):
else uploads succeed under keys no listed URL names, and every segment is a 404."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..settings.values import quoted
from ..settings import Settings

R2_API_HOST = ".r2.cloudflarestorage.com"


def endpoint_has_path(endpoint_url: str) -> bool:
    """An S3 endpoint with a path (as R2's dashboard shows it): every key would go one folder down."""
    return urlsplit(endpoint_url).path not in ("", "/")


def url_mistakes(s: Settings) -> list[str]:
    """One line per mistake, each naming the setting to fix; none when the URLs can be right."""
    problems = [
        f"{b.setting('S3_ENDPOINT_URL')} has a path ({quoted(urlsplit(b.endpoint_url).path)}): use the "
        "account endpoint https://<ACCOUNT_ID>.r2.cloudflarestorage.com and put the bucket in "
        f"{b.setting('AWS_BUCKET_NAME')}" for b in s.buckets if endpoint_has_path(b.endpoint_url)]
    public_host = urlsplit(s.first_bucket.public_url).hostname or ""
    if public_host.endswith(R2_API_HOST) and s.segment_urls != "presigned":
        problems.append(
            "R2_PUBLIC_URL points at the S3 API host, which only answers signed requests: use the "
            "bucket's custom domain (or its r2.dev URL while testing)")
    return problems
