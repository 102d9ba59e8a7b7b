"""A bucket's settings: the first's (S3_*, AWS_*, R2_PUBLIC_URL), another's `<ID>_*` (`backup`: BACKUP_*)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import values as kinds
from .rows import Setting, rows, setting

FIRST = "bucket"  # the first bucket's pathway ID (hls.BUCKET_PATHWAY)
VM = "vm"  # the VM's pathway ID (hls.VM_PATHWAY)


@dataclass(frozen=True)
class BucketSettings:
    """One bucket pathway's settings; the setting names are the first bucket's."""

    pathway: str
    endpoint_url: str = setting("the bucket's S3 API endpoint, e.g. https://<ACCOUNT_ID>.r2.cloudflarestorage.com",
                                kinds.url, name="S3_ENDPOINT_URL")
    region: str = setting("the bucket's S3 region; R2 takes 'auto' (AWS the bucket's own, e.g. eu-central-1)",
                          kinds.nonempty, "auto", name="S3_REGION")
    access_key_id: str = setting("the access key id of the bucket's API token", kinds.nonempty,
                                 name="AWS_ACCESS_KEY_ID")
    secret_access_key: str = setting(
        "the secret of the bucket's API token (prefer the environment or .env to a flag)", kinds.nonempty,
        secret=True, name="AWS_SECRET_ACCESS_KEY")
    bucket: str = setting("the bucket the segments go to", kinds.bucket_name, name="AWS_BUCKET_NAME")
    # Empty only for the first bucket with SEGMENT_URLS=presigned (load.py's checks say so for the others).
    public_url: str = setting(
        "the public base URL viewers fetch the bucket's segments from (custom domain or r2.dev)",
        kinds.optional(kinds.url), "", name="R2_PUBLIC_URL",
        doc="Required (unless `SEGMENT_URLS=presigned` for the first bucket): base URL viewers fetch segments "
            "from: your custom domain (production) or `https://pub-<id>.r2.dev` (testing only: rate limited); "
            "another provider's must answer cross-origin GETs (CORS) too")

    @property
    def first(self) -> bool:
        return self.pathway == FIRST

    def setting(self, first_name: str) -> str:
        """This bucket's name for the setting the first bucket calls `first_name`."""
        return next((row.name for row, first in zip(bucket_rows(self.pathway), rows(BucketSettings))
                     if first.name == first_name), first_name)


def bucket_rows(pathway: str) -> tuple[Setting, ...]:
    """The settings of the bucket pathway `pathway` (AWS_BUCKET_NAME -> BACKUP_BUCKET_NAME)."""
    if pathway == FIRST:
        return rows(BucketSettings)
    prefix = pathway.upper() + "_"
    return tuple(replace(row, name=prefix + row.name.removeprefix("AWS_").removeprefix("R2_"))
                 for row in rows(BucketSettings))


def extra_buckets(pathways: tuple[str, ...]) -> tuple[str, ...]:
    """The bucket pathways PATHWAYS names besides the first."""
    return tuple(p for p in pathways if p not in (FIRST, VM))
