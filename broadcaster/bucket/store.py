"""The S3-compatible bucket (Cloudflare R2 in production), through one aiobotocore client: checksums only
when required, our own total timeout per request (docs/r2.md), and every answer's body read up to a cap
(BoundedAIOHTTPSession: aiobotocore reads it whole, so an endless body would grow memory without bound)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from collections.abc import Awaitable
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError, EndpointConnectionError,
                                 ReadTimeoutError)

from ..settings import BucketSettings
from .sessions import aio_session

_SETTING_ERRORS = {  # error codes that mean the settings are wrong, not that the bucket has a bad minute
    "InvalidAccessKeyId": "AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY",
    "AccessDenied": "AWS_ACCESS_KEY_ID",
    "NoSuchBucket": "AWS_BUCKET_NAME",
    "InvalidBucketName": "AWS_BUCKET_NAME",
    "AuthorizationHeaderMalformed": "S3_REGION",
}


PROBE_KEY = ".hls-broadcaster-probe-never-exists"

# A reason is logged, shown in /health and (bounded) used as a label: an error code as S3 spells them.
_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class StoreError(Exception):
    """A bucket operation failed. `reason` is a short code safe to log, label and show in /health."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason

    @property
    def setting(self) -> str | None:
        """The setting to blame, when the error means the configuration is wrong."""
        return _SETTING_ERRORS.get(self.reason)


@dataclass(frozen=True)
class BucketAccess:
    """Where a bucket is, and the API token that may use it."""

    endpoint_url: str
    region: str
    access_key: str
    secret_key: str
    bucket: str

    @classmethod
    def of(cls, settings: BucketSettings) -> BucketAccess:
        return cls(settings.endpoint_url, settings.region, settings.access_key_id, settings.secret_access_key,
                   settings.bucket)

    def client_args(self) -> dict[str, str]:
        """The arguments of botocore's create_client that say where and as whom."""
        return {"endpoint_url": self.endpoint_url, "region_name": self.region,
                "aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}


class S3Store:
    def __init__(self, access: BucketAccess, *, max_connections: int = 10, connect_timeout: float = 3.0,
                 read_timeout: float = 10.0) -> None:
        self.bucket = access.bucket
        self._client_args: dict[str, Any] = {
            **access.client_args(),
            "config": AioConfig(
                max_pool_connections=max_connections, connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # The uploader retries itself, counting each failure (max_attempts=1 would still retry once).
                retries={"mode": "standard", "total_max_attempts": 1},
                # R2 has rejected the default CRC32 trailers (botocore >= 1.36).
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
                http_session_cls=BoundedAIOHTTPSession,
            ),
        }
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def start(self) -> None:
        if self._client is not None:
            return
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(aio_session().create_client("s3", **self._client_args))
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> S3Store:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def client(self) -> Any:
        """The raw aiobotocore client, for the `check` command and tests."""
        if self._client is None:
            raise RuntimeError("store not started")
        return self._client

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        async with _errors():
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                         CacheControl=cache_control)

    async def delete(self, key: str) -> None:
        async with _errors():
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_many(self, keys: list[str]) -> list[str]:
        """Delete up to 1000 keys (one by one where DeleteObjects is refused); the keys not deleted."""
        try:
            async with _errors():
                answer = await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        except StoreError as err:
            if err.reason not in ("NotImplemented", "InvalidRequest", "MissingContentMD5", "BadDigest"):
                raise
            failed = []
            for key in keys:
                try:
                    await self.delete(key)
                except StoreError:
                    failed.append(key)
            return failed
        return [str(e["Key"]) for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]

    async def probe(self) -> None:
        """A GET of a key that does not exist proves endpoint, credentials and bucket (any R2 token may)."""
        try:
            async with _errors():
                found = await self.client.get_object(Bucket=self.bucket, Key=PROBE_KEY)
                found["Body"].close()  # someone created it; the bucket works all the same
        except StoreError as err:
            if err.reason != "NoSuchKey":
                raise


async def within(call: Awaitable[object], timeout: float) -> StoreError | None:
    """`call` given `timeout` seconds at most: None when it succeeded, else why not ("Timeout": too slow)."""
    try:
        async with asyncio.timeout(timeout):
            await call
    except StoreError as err:
        return StoreError(err.reason)  # not `err`: its traceback's frames hold what was sent (a segment)
    except TimeoutError:
        return StoreError("Timeout")
    return None


@contextlib.asynccontextmanager
async def _errors() -> Any:
    """Turn the many botocore/aiohttp exceptions into one StoreError with a loggable reason."""
    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        code = str(error.get("Code") or status)
        if not _CODE.fullmatch(code):  # whatever a misbehaving endpoint put there
            code = status
        code = {"403": "AccessDenied", "404": "NoSuchBucket"}.get(code, code)  # HeadBucket's, without a body
        raise StoreError(code, str(error.get("Message", ""))[:200]) from err
    except TimeoutError as err:  # before OSError, of which it is a subclass
        raise StoreError("Timeout") from err
    except (BotoCoreError, OSError, aiohttp.ClientError) as err:
        raise StoreError(type(err).__name__, str(err)) from err


MAX_ERROR_BODY = 64 * 1024  # an S3 error document is a few hundred bytes
MAX_BODY = 4 * 1024 * 1024  # DeleteObjects for 1000 keys, every one refused: ~1.5 MB with 1 KB keys


class ResponseTooLarge(BotoCoreError):  # type: ignore[misc]  # botocore is untyped
    fmt = "HTTP {status} from {endpoint_url} has a body over {limit} bytes; not read further"


class BoundedAIOHTTPSession(AIOHTTPSession):  # type: ignore[misc]  # aiobotocore is untyped
    async def send(self, request: Any) -> Any:
        streaming = request.stream_output
        request.stream_output = True  # aiobotocore leaves the body unread: ours to read, capped
        try:
            response = await super().send(request)
        finally:
            request.stream_output = streaming
        if streaming and response.status_code < 300:
            return response  # GetObject's body: its caller reads or closes it
        limit = MAX_ERROR_BODY if response.status_code >= 300 else MAX_BODY
        # Cached where AioAWSResponse.content keeps what it read, so botocore never reads again.
        response._content = await read_capped(response.raw, limit, request.url)
        return response


async def read_capped(raw: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    """The whole body when at most `limit` bytes, else ResponseTooLarge; transport errors as botocore's."""
    if raw.content_length is not None and raw.content_length > limit:
        raw.close()
        raise ResponseTooLarge(status=raw.status, endpoint_url=url, limit=limit)
    body = bytearray()
    try:
        while chunk := await raw.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raw.close()  # the rest is never read; the connection is not reused
                raise ResponseTooLarge(status=raw.status, endpoint_url=url, limit=limit)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as err:
        raise ConnectionClosedError(endpoint_url=url, error=err) from err
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as err:
        raise ReadTimeoutError(endpoint_url=url, error=err) from err
    except aiohttp.ClientConnectionError as err:
        raise EndpointConnectionError(endpoint_url=url, error=err) from err
    return bytes(body)
