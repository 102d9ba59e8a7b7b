"""The buckets' settings, one record each: the first bucket's (S3_*, AWS_*, R2_PUBLIC_URL) and every other
bucket PATHWAYS names (`<ID>_S3_ENDPOINT_URL` ... `<ID>_PUBLIC_URL`: BACKUP_* for `backup`, B2_* for a
pathway named `b2`). A bucket added is a PATHWAYS entry and its six settings: no code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import setting_values as kinds

FIRST = "bucket"  # the first bucket's pathway ID (hls.BUCKET_PATHWAY)
VM = "vm"  # the VM's pathway ID (hls.VM_PATHWAY)

# A bucket's settings: the record's field, the first bucket's setting, another's suffix (after "<ID>_"),
# its parser, its default ("": required with that pathway), whether it is a secret, and what it is.
_FIELDS: tuple[tuple[str, str, str, Callable[[str], Any], str, bool, str], ...] = (
    ("endpoint_url", "S3_ENDPOINT_URL", "S3_ENDPOINT_URL", kinds.url, "", False, "its S3 API endpoint"),
    ("region", "S3_REGION", "S3_REGION", kinds.nonempty, "auto", False, "its S3 region"),
    ("access_key_id", "AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID", kinds.nonempty, "", False, "its access key id"),
    ("secret_access_key", "AWS_SECRET_ACCESS_KEY", "SECRET_ACCESS_KEY", kinds.nonempty, "", True,
     "its secret access key"),
    ("bucket", "AWS_BUCKET_NAME", "BUCKET_NAME", kinds.bucket_name, "", False, "the bucket"),
    ("public_url", "R2_PUBLIC_URL", "PUBLIC_URL", kinds.url, "", False,
     "the public base URL viewers fetch its segments from"),
)


@dataclass(frozen=True)
class BucketSettings:
    """One bucket pathway's settings, and the names they are set under (for lines that name them)."""

    pathway: str
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    bucket: str
    public_url: str

    @property
    def first(self) -> bool:
        return self.pathway == FIRST

    def setting(self, first_name: str) -> str:
        """This bucket's name for the setting the first bucket calls `first_name` (AWS_BUCKET_NAME ->
        BACKUP_BUCKET_NAME): what a line about it names."""
        for _field, first, suffix, *_rest in _FIELDS:
            if first == first_name:
                return first if self.first else f"{prefix(self.pathway)}{suffix}"
        return first_name


def prefix(pathway: str) -> str:
    """The settings' prefix of a bucket pathway other than the first: `BACKUP_` for `backup`."""
    return pathway.upper().replace("-", "_") + "_"


def names(pathway: str) -> list[str]:
    """Every setting a bucket pathway other than the first takes."""
    return [f"{prefix(pathway)}{suffix}" for _f, _first, suffix, *_ in _FIELDS]


def fields(pathway: str) -> list[tuple[str, str, Callable[[str], Any], str, bool, str]]:
    """(record field, setting name, parser, default, secret, what it is) of a bucket pathway other than
    the first."""
    return [(f, f"{prefix(pathway)}{suffix}", parse, default, secret, what)
            for f, _first, suffix, parse, default, secret, what in _FIELDS]


def extra_buckets(pathways: tuple[str, ...]) -> tuple[str, ...]:
    """The bucket pathways PATHWAYS names besides the first (every one but `bucket` and `vm`)."""
    return tuple(p for p in pathways if p not in (FIRST, VM))
