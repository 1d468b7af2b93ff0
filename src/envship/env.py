"""`Env`: a published env — its URI, manifest and the store it lives in."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import StoreError
from .packing.manifest import Manifest

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Env", "split_env_uri"]

T = TypeVar("T")

_ENV_TAIL = re.compile(r"^(?:(?P<store>.*)/)?envs/(?P<id>[0-9a-f]{64})(?:\.presigned)?\.json$")
_TAG_TAIL = re.compile(r"^(?:(?P<store>.*)/)?tags/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\.json$")


def split_env_uri(uri: str) -> tuple[str, str, str]:
    """`<store>/envs/<id>.json` -> (store, "env", id); `<store>/tags/<n>.json` -> (store,
    "tag", n). Presigned manifests (`<id>.presigned.json`) count as the env."""
    path = urllib.parse.urlsplit(uri)._replace(query="", fragment="").geturl()
    if "://" not in uri:
        path = uri
    m = _ENV_TAIL.match(path)
    if m:
        return m.group("store") or ".", "env", m.group("id")
    m = _TAG_TAIL.match(path)
    if m:
        return m.group("store") or ".", "tag", m.group("name")
    raise StoreError(
        f"{uri} is not an env URI: expected <store>/envs/<env-id>.json or "
        "<store>/tags/<name>.json (as printed by `envship ship`)"
    )


@dataclass(frozen=True)
class Env:
    """All a job needs to run inside a shipped env. `uri` never carries credentials."""

    uri: str
    manifest: Manifest
    store_url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def env_id(self) -> str:
        return self.manifest.env_id

    @property
    def is_presigned(self) -> bool:
        return bool(self.manifest.layers) and all(lay.url for lay in self.manifest.layers)

    def store(self) -> Store:
        from .store import open_store

        return open_store(self.store_url, self.storage_options)

    def presigned(self, expires: int = 3600) -> Env:
        """The same env (same env id) whose manifest and layers are presigned HTTPS URLs,
        valid for *expires* seconds: nodes need neither credentials nor s3fs."""
        result = self.store().presign(self.env_id, expires=expires)
        return Env(result.url, result.manifest, self.store_url, self.storage_options)

    def run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``func(*args, **kwargs)`` in a new process inside this env; return its result.

        The env is fetched into the node cache (``$ENVSHIP_CACHE``) first if needed. Modules the
        function uses from local files that are not in the env are pickled by value.
        Exceptions come back with their type and the remote traceback as ``__cause__``.
        """
        from .remote import run

        return run(self.uri, self.manifest, func, *args, **kwargs)

    def map(
        self, func: Callable[[Any], T], iterable: Iterable[Any], processes: int | None = None
    ) -> list[T]:
        """``[func(x) for x in iterable]``, computed by *processes* interpreters in this env."""
        from .remote import map_

        return map_(self.uri, self.manifest, func, iterable, processes=processes)

    @classmethod
    def open(cls, uri: str, storage_options: Mapping[str, Any] | None = None) -> Env:
        """The env at an env URI (`<store>/envs/<id>.json`) or tag URI (`<store>/tags/<n>.json`)."""
        from .store import open_store
        from .store.fs import redact_url

        store_url, kind, ref = split_env_uri(uri)
        store = open_store(store_url, storage_options)
        env_id = store.read_tag(ref) if kind == "tag" else ref
        manifest = store.read_manifest(env_id)
        uri_out = redact_url(uri) if kind == "env" and "?" not in uri else store.env_uri(env_id)
        if uri_out.endswith(".presigned.json"):
            uri_out = store.env_uri(env_id)
        return cls(uri_out, manifest, store.url, dict(store.storage_options))
