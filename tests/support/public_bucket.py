"""A bucket on moto that anyone may read, as an R2 bucket behind its public URL: moto refuses an unsigned
GET until a bucket policy allows it, and then the service's steering probe would fail and steer players
to the VM, which a test about something else would read as its own failure."""

from __future__ import annotations

import json
from typing import Any

import boto3


def readable_by_anyone(s3: Any, bucket: str) -> None:
    """Allows an unsigned GetObject of every key in `bucket` (s3: a boto3 S3 client of its server)."""
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def moto_s3(moto_url: str) -> Any:
    """A boto3 S3 client of moto's server (any keys do there)."""
    return boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="k", aws_secret_access_key="s",
                        region_name="us-east-1")


def moto_bucket(moto_url: str, name: str, *, public: bool = True) -> Any:
    """Bucket `name` on moto's server, made unless it is there, readable by anyone if `public`: a client."""
    s3 = moto_s3(moto_url)
    if name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=name)
    if public:
        readable_by_anyone(s3, name)
    return s3


def keys_in(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def bucket_block(pathway: str, moto_url: str, name: str, key: str = "k", secret: str = "s") -> dict[str, str]:
    """The settings of the bucket pathway `pathway` (its <ID>_* block) for bucket `name` on moto's server."""
    at = pathway.upper()
    return {f"{at}_S3_ENDPOINT_URL": moto_url, f"{at}_S3_REGION": "us-east-1", f"{at}_ACCESS_KEY_ID": key,
            f"{at}_SECRET_ACCESS_KEY": secret, f"{at}_BUCKET_NAME": name, f"{at}_PUBLIC_URL": f"{moto_url}/{name}"}
