"""aiobotocore's HTTP session, reading at most a fixed number of bytes per answer.

aiobotocore reads every answer's body whole before botocore looks at it (AIOHTTPSession.send for
non-streaming operations, convert_to_response_dict for every error): an endless body would grow memory
without bound. Past the cap the connection is dropped and the attempt fails with ResponseTooLarge.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

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
    """The whole body when it is at most `limit` bytes; else the connection is closed and
    ResponseTooLarge raised. Transport errors become the botocore errors aiobotocore would raise."""
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
