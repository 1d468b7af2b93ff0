"""Foreign errors translated at the boundary: which failures are worth retrying, and one clear
StoreError (never carrying credentials) for each that is not."""

from __future__ import annotations

import errno
import os
import sys

from ...errors import StoreError
from .location import StoreLocation

__all__ = ["NotFound", "Refused", "DeadlinePassed", "is_transient", "is_unreachable",
           "as_store_error", "RETRY_ENV"]

RETRY_ENV = "ENVSHIP_STORE_RETRY_TIMEOUT"


class NotFound(StoreError):
    """A store object that was read is not there."""


class Refused(StoreError):
    """A store object refused as read: larger than the limit, or not a regular file."""


class DeadlinePassed(StoreError):
    """The caller's time limit passed: no further request was sent."""


_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "ETIMEDOUT", "EHOSTUNREACH",
        "ENETUNREACH", "ENETDOWN", "EPIPE", "EAGAIN", "EBUSY", "EREMOTEIO",
    )
    if hasattr(errno, name)
)
# Exception class names (botocore, aiohttp, requests, urllib3, fsspec) that mean "try again".
_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError",
        "ReadTimeoutError", "HTTPClientError", "ClientConnectionError", "ClientOSError",
        "ServerDisconnectedError", "ServerTimeoutError", "ClientPayloadError",
        "FSTimeoutError", "IncompleteRead", "ProtocolError", "ChunkedEncodingError",
        "ResponseParserError", "ProxyConnectionError", "ConnectionError",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
        "TooManyRequests", "RequestTimeout", "ServiceUnavailable", "InternalError",
        "TooManyRequestsException", "ProvisionedThroughputExceededException",
    }
)
_FATAL = (PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError,
          NotADirectoryError)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata", {})
        code = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
        return code if isinstance(code, int) else None
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _one_transient(exc: BaseException) -> bool | None:
    """True/False when *exc* alone decides; None to look at its cause."""
    if isinstance(exc, _FATAL):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code in _THROTTLE_CODES:
            return True
    status = _status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return None


def is_transient(exc: BaseException) -> bool:
    """Connection reset/refused, timeouts, 5xx and throttling: worth another attempt."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _one_transient(current)
        if verdict is not None:
            return verdict
        current = current.__cause__ or current.__context__
    return False


# Nothing listens there, or the name does not resolve: waiting will not change that (a
# restarting server is covered by the client's own immediate retry).
_UNREACHABLE_NAMES = frozenset(
    {"ClientConnectorDNSError", "NameResolutionError", "gaierror"}
)
_CREDENTIAL_NAMES = frozenset({"NoCredentialsError", "PartialCredentialsError"})


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_unreachable(exc: BaseException) -> str | None:
    """"connection refused" or "host not found" when *exc* (or its cause) says so: not worth
    retrying for half a minute. None otherwise."""
    for one in _chain(exc):
        # socket is not imported for a local store: no gaierror can exist then
        sock = sys.modules.get("socket")
        if (sock is not None and isinstance(one, sock.gaierror)) or any(
            cls.__name__ in _UNREACHABLE_NAMES for cls in type(one).__mro__
        ):
            return "host not found"
        if isinstance(one, ConnectionRefusedError) or (
            isinstance(one, OSError) and one.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
    return None


def _missing_credentials(exc: BaseException) -> bool:
    return any(
        cls.__name__ in _CREDENTIAL_NAMES for one in _chain(exc) for cls in type(one).__mro__
    )


def _partial_credentials(exc: BaseException) -> bool:
    return any(
        cls.__name__ == "PartialCredentialsError" for one in _chain(exc)
        for cls in type(one).__mro__
    )


def _credentials_hint(loc: StoreLocation) -> str:
    """Where botocore looked for S3 credentials, so the user knows what to set."""
    opts = loc.storage_options
    profile = opts.get("profile") or os.environ.get("AWS_PROFILE") or "default"
    creds = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    config = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
    client = opts.get("client_kwargs")
    endpoint = opts.get("endpoint_url") or (
        client.get("endpoint_url") if isinstance(client, dict) else None
    ) or os.environ.get("AWS_ENDPOINT_URL") or "AWS's default"
    return (
        "looked in storage options key/secret, $AWS_ACCESS_KEY_ID + $AWS_SECRET_ACCESS_KEY, "
        f"profile {profile!r} in {creds} and {config}, and the instance metadata service "
        f"(endpoint: {endpoint}); set one of them, or -s anon=true for a public bucket"
    )


def as_store_error(exc: BaseException, what: str, loc: StoreLocation) -> StoreError:
    """One clear message for a failed store operation; never carries credentials."""
    detail = loc.scrub(f"{type(exc).__name__}: {exc}".strip())
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, PermissionError) and loc.caps.local:
        return StoreError(
            f"{what} in store {loc.url}: permission denied ({detail}); check the directory's "
            "permissions, or use another one"
        )
    if isinstance(exc, PermissionError) or _status(exc) in (401, 403):
        return StoreError(
            f"{what} in store {loc.url}: access denied ({detail}); check the credentials "
            "(storage options, environment variables or config files) and their permissions"
        )
    opts = loc.storage_options
    if _partial_credentials(exc) and ("key" in opts) != ("secret" in opts):
        given, missing = ("key", "secret") if "key" in opts else ("secret", "key")
        return StoreError(
            f"{what} in store {loc.url}: storage option {given!r} is set but {missing!r} is not "
            f"(botocore does not pair one with $AWS_* variables); give -s {missing}=… too, or "
            f"drop -s {given} to use the environment's credentials"
        )
    if _missing_credentials(exc):
        return StoreError(f"{what} in store {loc.url}: no S3 credentials found; "
                          + _credentials_hint(loc))
    unreachable = is_unreachable(exc)
    if unreachable is not None:
        return StoreError(
            f"{what} in store {loc.url}: the store is unreachable, {unreachable} ({detail}); "
            "check the store URL, endpoint_url and the network"
        )
    if isinstance(exc, FileNotFoundError):
        return StoreError(
            f"{what} in store {loc.url}: not found ({detail}); check that the store URL is "
            "right and that its bucket/directory exists"
        )
    if is_transient(exc):
        return StoreError(
            f"{what} in store {loc.url}: the store is unreachable or failing ({detail}); "
            f"gave up after retrying; check the network/endpoint, or raise {RETRY_ENV}"
        )
    return StoreError(f"{what} in store {loc.url}: {detail}")
