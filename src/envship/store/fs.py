"""Open a store's fsspec filesystem; keep credentials out of URLs, logs and error messages."""

from __future__ import annotations

import datetime as _dt
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError

__all__ = [
    "StoreLocation",
    "open_location",
    "redact_url",
    "Scrubber",
    "is_object_store",
    "mtime_of",
    "parse_storage_options",
]

# Protocols whose writes are atomic per object (a PUT or a completed multipart upload) and
# which have no atomic rename: blobs go straight to their final key there.
_OBJECT_STORES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss", "r2"}
)

# Which package provides a protocol, for the install hint.
_PACKAGES = {
    "s3": ("s3fs", "envship[s3]"),
    "s3a": ("s3fs", "envship[s3]"),
    "gs": ("gcsfs", "envship[gcs]"),
    "gcs": ("gcsfs", "envship[gcs]"),
    "hdfs": ("pyarrow", None),
    "webhdfs": ("requests", None),
    "az": ("adlfs", "envship[azure]"),
    "abfs": ("adlfs", "envship[azure]"),
    "abfss": ("adlfs", "envship[azure]"),
    "http": ("aiohttp", None),
    "https": ("aiohttp", None),
}

# Environment variables whose values are credentials: masked wherever they would appear.
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET",
)
_SIGNED_QUERY = re.compile(
    r"((?:X-Amz-(?:Credential|Signature|Security-Token)|X-Goog-(?:Credential|Signature)"
    r"|(?<=[?&])(?:Signature|GoogleAccessId|sig))=)[^&\s'\"]+"
)

# Storage-option keys whose values are never secret (kept as they are in error messages).
_PUBLIC_KEYS = frozenset(
    {"endpoint_url", "region_name", "anon", "host", "port", "use_ssl", "requester_pays"}
)


def redact_url(url: str) -> str:
    """`scheme://user:pass@host/p` -> `scheme://host/p`; query strings (signatures) dropped."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # plain path or a Windows drive letter
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _secrets(options: Mapping[str, Any], key: str = "") -> list[str]:
    found: list[str] = []
    for k, v in options.items():
        if isinstance(v, Mapping):
            found += _secrets(v, k)
        elif isinstance(v, str) and len(v) >= 4 and k not in _PUBLIC_KEYS:
            found.append(v)
    return found


@dataclass(frozen=True)
class Scrubber:
    """Removes credential values (from storage options and URL userinfo) from any text."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def for_store(cls, url: str, options: Mapping[str, Any]) -> Scrubber:
        found = _secrets(options)
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            found += [s for s in (userinfo, *userinfo.split(":", 1)) if len(s) >= 3]
        for env in _SECRET_ENV:
            value = os.environ.get(env, "")
            if len(value) >= 8:
                found.append(value)
                # an Azure connection string holds the account key or a SAS token
                found += [m for m in re.findall(r"(?:AccountKey|SharedAccessSignature)=([^;]+)",
                                                value) if len(m) >= 8]
        return cls(tuple(sorted(set(found), key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        # Signed query strings carry credentials-derived tokens (S3, GCS V2/V4, Azure SAS).
        return _SIGNED_QUERY.sub(r"\1***", text)


@dataclass(frozen=True)
class StoreLocation:
    """A store root on one filesystem: where blobs, manifests and tags live."""

    fs: Any = field(repr=False)  # fsspec.AbstractFileSystem
    root: str  # path of the store root inside `fs`, no trailing slash
    url: str  # the store URL as given, credentials removed
    protocol: str
    storage_options: Mapping[str, Any] = field(repr=False, compare=False)
    scrub: Scrubber = field(repr=False, compare=False)

    @property
    def object_store(self) -> bool:
        return is_object_store(self.protocol)

    def path(self, *parts: str) -> str:
        return "/".join((self.root, *parts)) if self.root else "/".join(parts)

    def url_of(self, *parts: str) -> str:
        return "/".join((self.url.rstrip("/"), *parts))

    def blob_path(self, digest: str) -> str:
        return self.path("blobs", "sha256", f"{_hex(digest)}.tar.gz")

    def env_path(self, env_id: str, suffix: str = ".json") -> str:
        return self.path("envs", f"{env_id}{suffix}")

    def tag_path(self, name: str) -> str:
        return self.path("tags", f"{name}.json")

    def ls(self, path: str, detail: bool = True) -> list[Any]:
        """``fs.ls(path)`` as the store is now. fsspec caches listings per filesystem
        instance (s3fs until told otherwise), and other processes change the store: a gc,
        a publish or a lease check that read a cached listing would act on the past."""
        self.fs.invalidate_cache(path)
        return list(self.fs.ls(path, detail=detail))


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexpart):
        raise StoreError(f"bad blob digest {digest!r}: expected 'sha256:<64 hex digits>'")
    return hexpart


def is_object_store(protocol: str) -> bool:
    return protocol in _OBJECT_STORES


def _s3_defaults(options: dict[str, Any]) -> None:
    # Bound botocore's own retries so envship's retry deadline stays meaningful; users who
    # configure botocore themselves (config_kwargs or AWS_* env) keep their settings.
    if "config_kwargs" in options or "AWS_MAX_ATTEMPTS" in os.environ:
        return
    options["config_kwargs"] = {
        "retries": {"max_attempts": 2, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
    }


def install_hint(protocol: str, url: str, detail: str) -> StoreError:
    pkg, extra = _PACKAGES.get(protocol, (None, None))
    if pkg is None:
        return StoreError(
            f"cannot open store {url}: {detail}; install the fsspec implementation for "
            f"'{protocol}://' (see https://filesystem-spec.readthedocs.io)"
        )
    hint = f"`pip install {pkg}`" + (f" (or `pip install {extra}`)" if extra else "")
    return StoreError(f"cannot open store {url}: '{protocol}://' needs {pkg}: {hint}")


def open_location(url: str, storage_options: Mapping[str, Any] | None = None) -> StoreLocation:
    """Resolve *url* (local path, file://, s3://, gs://, hdfs://, memory://, …) to a location."""
    from fsspec.core import split_protocol, url_to_fs
    from fsspec.registry import get_filesystem_class

    user_options = dict(storage_options or {})
    options = dict(user_options)
    protocol = split_protocol(url)[0] or "file"
    if len(protocol) == 1 or "://" not in url:  # a plain path (or a Windows drive letter)
        protocol = "file"
        # Every URI envship prints must work from any directory and without a shell: "~/s"
        # or "./s" would not (the node runtime expands neither).
        url = os.path.abspath(os.path.expanduser(url))
    public_url = redact_url(url)
    scrub = Scrubber.for_store(url, options)
    if protocol in ("s3", "s3a"):
        _s3_defaults(options)
    try:
        cls = get_filesystem_class(protocol)
    except ImportError as exc:
        raise install_hint(protocol, public_url, scrub(str(exc))) from None
    except ValueError as exc:
        raise StoreError(
            f"cannot open store {public_url}: unknown protocol '{protocol}://'; use a local "
            "path or an fsspec URL such as s3://, gs://, hdfs://, webhdfs://, memory://"
        ) from exc
    try:
        fs, root = url_to_fs(url, **options)
    except ImportError as exc:
        raise install_hint(protocol, public_url, scrub(str(exc))) from None
    except Exception as exc:  # bad options: TypeError/ValueError from the implementation
        raise StoreError(
            f"cannot open store {public_url} ({type(exc).__name__}: {scrub(str(exc))}); "
            "check the storage options"
        ) from None
    if protocol in ("s3", "s3a") and "config_kwargs" not in user_options:
        # s3fs retries throttling 5 times with backoff on top of botocore, silently;
        # envship's own retries (bounded, and reported) take over. This instance is ours:
        # fsspec caches it under envship's config_kwargs.
        fs.retries = 1
    # Keep options fsspec took from the URL (webhdfs user, ...) so the store can be reopened.
    merged = {**cls._get_kwargs_from_urls(url), **user_options}
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if proto == "local":
        proto = "file"
    return StoreLocation(fs, str(root).rstrip("/"), public_url.rstrip("/"), proto, merged, scrub)


def mtime_of(info: Mapping[str, Any]) -> float | None:
    """Modification time (POSIX seconds) from an fsspec `info`/`ls` entry of any backend."""
    # s3fs: LastModified; gcsfs: updated/mtime; adlfs: last_modified; WebHDFS: modificationTime
    for key in ("mtime", "LastModified", "last_modified", "updated", "modificationTime",
                "created", "creation_time", "mtime_ns"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.timezone.utc)
            return value.timestamp()
        if isinstance(value, (int, float)):
            if key == "modificationTime":
                return float(value) / 1000.0  # WebHDFS: milliseconds
            if key == "mtime_ns":
                return float(value) / 1e9
            return float(value)
        if isinstance(value, str):
            try:
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_dt.timezone.utc)
            return parsed.timestamp()
    return None


def parse_storage_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`["endpoint_url=http://h:9000", "client_kwargs.region_name=eu"]` -> nested dict.

    Values are read as JSON when they parse (true, 3, {"a": 1}), else kept as strings.
    """
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise StoreError(f"bad storage option {key or pair!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = out
        *parents, leaf = key.split(".")
        for name in parents:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise StoreError(f"bad storage option {key!r}: {name!r} is not a mapping")
        target[leaf] = value
    return out
