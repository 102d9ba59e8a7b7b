"""A bucket on moto that anyone may read, as an R2 bucket behind its public URL: the service's steering
probe and the players fetch segments without credentials, and moto in server mode refuses an unsigned
GET (403) until a bucket policy allows it. Without it the probe fails twice and the service rightly
steers players to the VM's pathway (players and /health then say so), which a test about something
else reads as its own failure."""

from __future__ import annotations

import json
from typing import Any


def readable_by_anyone(s3: Any, bucket: str) -> None:
    """Allows an unsigned GetObject of every key in `bucket` (s3: a boto3 S3 client of its server)."""
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
