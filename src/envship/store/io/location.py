"""Where a store is: its fsspec filesystem, root, public URL and capabilities; credentials kept
out of URLs, logs and error messages."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import StoreError
from ...node.formats import blob_key, env_key, tag_key
from ...node.ref import URL_SCHEMES, url_missing_slashes
from .capabilities import S3_PROTOCOLS, Capabilities, capabilities_of
from .local import LocalFiles, local_root

__all__ = [
    "Key",
    "StoreLocation",
    "open_location",
    "redact_url",
    "redact_signed_urls",
    "has_signed_url",
    "Scrubber",
    "blob",
    "parse_storage_options",
]

Key = tuple[str, ...]  # a path under the store root, as envship.node.formats spells it

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
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # "http://[::1/…": not a URL urllib can take apart; redact by hand
        scheme, _, rest = url.partition("://")
        host, sep, path = rest.split("?", 1)[0].split("#", 1)[0].partition("/")
        return f"{scheme}://{host.rpartition('@')[2]}{sep}{path}"
    if not parts.scheme or len(parts.scheme) == 1:  # plain path or a Windows drive letter
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_signed_urls(text: str) -> str:
    """*text* with the query string (presigned signatures, SAS tokens) of every http(s) URL in
    it replaced by a marker, and no user info: for commands shown on screen or in logs."""
    text = re.sub(r"(https?://)[^/@\s'\"]*@", r"\1", text)
    # The query ends at a space or quote, and at "," or "#": Spark's list confs join URLs with
    # commas and name them with "#alias", neither of which a signature holds.
    return re.sub(r"(https?://[^\s'\"?,]*)\?[^\s'\",#]*", r"\1?<signature redacted>", text)


def has_signed_url(text: str) -> bool:
    """Whether *text* holds an http(s) URL with a query string (a presigned signature, a SAS
    token) or user info: what :func:`redact_signed_urls` would hide."""
    return redact_signed_urls(text) != text


def public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """*options* with only the keys that are never secret, and no user info in URL values:
    what may travel with a pickled Env (nodes read their own credentials)."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        if isinstance(v, Mapping):
            inner = public_options(v)
            if inner:
                out[k] = inner
        elif k in _PUBLIC_KEYS:
            out[k] = redact_url(v) if isinstance(v, str) and "://" in v else v
    return out


def _url_values(options: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for v in options.values():
        if isinstance(v, Mapping):
            found += _url_values(v)
        elif isinstance(v, str) and "://" in v:
            found.append(v)
    return found


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
        # user info in the store URL and in URL-valued options (endpoint_url is public, a
        # password inside it is not)
        for text in (url, *_url_values(options)):
            netloc = text.split("://", 1)[1].split("/", 1)[0] if "://" in text else ""
            if "@" in netloc:
                userinfo = netloc.rpartition("@")[0]
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
        text = re.sub(r"(\w://)[^/@\s\"']*@", r"\1", text)  # user info in any URL
        # Signed query strings carry credentials-derived tokens (S3, GCS V2/V4, Azure SAS).
        return _SIGNED_QUERY.sub(r"\1***", text)


@dataclass(frozen=True)
class StoreLocation:
    """A store root on one filesystem: where blobs, manifests and tags live."""

    fs: Any = field(repr=False)  # fsspec.AbstractFileSystem, or LocalFiles (same calls)
    root: str  # path of the store root inside `fs`, no trailing slash
    url: str  # the store URL as given, credentials removed
    protocol: str
    storage_options: Mapping[str, Any] = field(repr=False, compare=False)
    scrub: Scrubber = field(repr=False, compare=False)
    caps: Capabilities = field(repr=False, compare=False)

    @property
    def object_store(self) -> bool:
        return self.caps.object_store

    def path(self, *parts: str) -> str:
        """The filesystem path of *parts* (a layout key) under the root."""
        return "/".join((self.root, *parts)) if self.root else "/".join(parts)

    def url_of(self, *parts: str) -> str:
        return "/".join((self.url.rstrip("/"), *parts))

    def key_of(self, path: str) -> Key:
        """The key of a filesystem path under the root (inverse of :meth:`path`)."""
        rel = path[len(self.root):] if self.root and path.startswith(self.root) else path
        return tuple(p for p in rel.split("/") if p)

    def blob_path(self, digest: str) -> str:
        return self.path(*blob(digest))

    def env_path(self, env_id: str) -> str:
        return self.path(*env_key(env_id))

    def tag_path(self, name: str) -> str:
        return self.path(*tag_key(name))


def blob(digest: str) -> Key:
    """:func:`formats.blob_key`, with a bad digest a StoreError."""
    try:
        return blob_key(digest)
    except ValueError:
        raise StoreError(
            f"bad blob digest {digest!r}: expected 'sha256:<64 hex digits>'") from None


def _s3_defaults(options: dict[str, Any]) -> None:
    # fsspec caches filesystems by their arguments, not by the environment botocore reads: an
    # endpoint given by AWS_ENDPOINT_URL goes into the arguments, so a process whose
    # environment changes never reuses a client bound to another endpoint.
    client = options.get("client_kwargs")
    if "endpoint_url" not in options and not (isinstance(client, dict)
                                              and "endpoint_url" in client):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
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
    user_options = dict(storage_options or {})
    options = dict(user_options)
    if "://" not in url:  # a plain path (or a Windows drive letter)
        _check_not_url(url)
        # Every URI envship prints must work from any directory and without a shell: "~/s"
        # or "./s" would not (the node runtime expands neither).
        url = os.path.abspath(os.path.expanduser(url))
    elif not url.partition("://")[2].strip("/"):
        scheme = url.partition("://")[0]
        raise StoreError(f"{url} names no bucket or path: give the store's location, like "
                         f"{scheme}://team-bucket/envs")
    public_url = redact_url(url)
    scrub = Scrubber.for_store(url, options)
    root = None if options else local_root(url)
    if root is not None:  # a local directory: os calls, no fsspec to import
        return StoreLocation(LocalFiles(), root.rstrip("/"), public_url.rstrip("/"), "file",
                             {}, scrub, capabilities_of("file", None))
    return _fsspec_location(url, public_url, user_options, options, scrub)


def _check_not_url(path: str) -> None:
    """A StoreError for a URL that lost its slashes (``s3:/bucket``, ``s3:bucket``): as a
    local path it would make a store in a directory called ``s3:``."""
    if ":" not in path.partition("/")[0]:
        return
    schemes = URL_SCHEMES | set(_PACKAGES)
    if path.partition(":")[0].lower() not in schemes:
        from fsspec.registry import known_implementations  # only for paths like "word:…"

        schemes |= set(known_implementations)
    mistyped = url_missing_slashes(path, schemes)
    if mistyped:
        raise StoreError(mistyped)


def _fsspec_location(url: str, public_url: str, user_options: dict[str, Any],
                     options: dict[str, Any], scrub: Scrubber) -> StoreLocation:
    from fsspec.core import split_protocol, url_to_fs
    from fsspec.registry import get_filesystem_class

    protocol = split_protocol(url)[0] or "file"
    if protocol in S3_PROTOCOLS:
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
        raise _open_failed(public_url, exc, scrub) from None
    if protocol in S3_PROTOCOLS and "config_kwargs" not in user_options:
        # s3fs retries throttling 5 times with backoff on top of botocore, silently;
        # envship's own retries (bounded, and reported) take over. This instance is ours:
        # fsspec caches it under envship's config_kwargs.
        fs.retries = 1
    # Keep options fsspec took from the URL (webhdfs user, ...) so the store can be reopened.
    merged = {**cls._get_kwargs_from_urls(url), **user_options}
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if proto == "local":
        proto = "file"
    return StoreLocation(fs, str(root).rstrip("/"), public_url.rstrip("/"), proto, merged, scrub,
                         capabilities_of(proto, fs))


def _open_failed(public_url: str, exc: Exception, scrub: Scrubber) -> StoreError:
    """One line for a filesystem that would not start: pyarrow's HDFS client lists every
    place it looked for libjvm, one line each."""
    lines = scrub(str(exc)).strip().splitlines() or [""]
    if "libjvm" in lines[0] or "libhdfs" in lines[0]:
        return StoreError(
            f"cannot open store {public_url}: pyarrow's HDFS client needs Java and Hadoop "
            f"({lines[0]}); set JAVA_HOME to a JDK and HADOOP_HOME (or ARROW_LIBHDFS_DIR) to "
            "where libhdfs.so is"
        )
    more = " …" if len(lines) > 1 else ""
    return StoreError(f"cannot open store {public_url} ({type(exc).__name__}: {lines[0]}{more}); "
                      "check the storage options")


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
        except (ValueError, RecursionError):
            value = raw
        target = out
        *parents, leaf = key.split(".")
        for name in parents:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise StoreError(f"bad storage option {key!r}: {name!r} is not a mapping")
        target[leaf] = value
    return out
