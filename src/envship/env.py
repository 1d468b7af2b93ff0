"""`Env`: a published env — its URI, manifest and the store it lives in."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from .errors import ManifestError, StoreError
from .node.ref import parse_ref, url_missing_slashes
from .packing.manifest import Manifest

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Env", "EnvRef", "locate_env", "open_manifest", "split_env_uri"]

T = TypeVar("T")

# What every engine adapter takes as an env: see Env.coerce.
EnvRef: TypeAlias = "Env | str | os.PathLike[str]"

def split_env_uri(uri: str) -> tuple[str, str, str]:
    """`<store>/envs/<id>.json` -> (store, "env", id); `<store>/tags/<n>.json` -> (store,
    "tag", n); a packed env directory -> (it, "packed", its path). Presigned manifests
    (`<id>.presigned.json`) count as the env. See :func:`envship.node.ref.parse_ref`."""
    try:
        parsed = parse_ref(uri)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    kind = "env" if parsed.kind == "presigned" else parsed.kind
    if parsed.store is None:
        raise StoreError(
            f"{uri}: a manifest outside a store's envs/ directory; pass the env URI "
            "(<store>/envs/<env-id>.json) as printed by `envship ship`"
        )
    return parsed.store, kind, parsed.name


@dataclass(frozen=True)
class Env:
    """All a job needs to run inside a shipped env. `uri` never carries credentials."""

    uri: str
    manifest: Manifest
    store_url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled into jobs and engines: no secret from storage_options travels along (keys,
        # tokens, passwords in URLs); nodes read their own credentials.
        from .store.io.location import public_options

        return (Env, (self.uri, self.manifest, self.store_url,
                      public_options(self.storage_options)))

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

        return run(self.uri, self.manifest, func, args, kwargs)

    def map(
        self, func: Callable[[Any], T], iterable: Iterable[Any], processes: int | None = None
    ) -> list[T]:
        """``[func(x) for x in iterable]``, computed by *processes* interpreters in this env."""
        from .remote import map_

        return map_(self.uri, self.manifest, func, iterable, processes=processes)

    @classmethod
    def coerce(
        cls, ref: EnvRef, storage_options: Mapping[str, Any] | None = None
    ) -> Env:
        """*ref* as an :class:`Env`: an Env as it is (with *storage_options*, if given, to
        read its store), else :meth:`open` of the env URI, tag URI, packed env directory or
        presigned manifest URL it names. What every engine adapter calls on the env it gets.
        Without *storage_options*, fsspec and the cloud SDKs read theirs from the
        environment (``AWS_ENDPOINT_URL``, ``FSSPEC_S3_*``...), as :func:`envship.ship` does."""
        if isinstance(ref, Env):
            if storage_options is None:
                return ref
            return dataclasses.replace(ref, storage_options=dict(storage_options))
        return cls.open(cls.uri_of(ref), storage_options)

    @staticmethod
    def uri_of(ref: EnvRef) -> str:
        """The reference a node runtime resolves, without reading anything: an Env's URI, or
        *ref* as given. For launchers that only write it on a command line."""
        if isinstance(ref, Env):
            return ref.uri
        if isinstance(ref, os.PathLike):
            ref = os.fspath(ref)
        if not isinstance(ref, str) or not ref:
            raise StoreError(
                f"{ref!r} is neither an Env nor an env URI: pass the Env envship.ship() "
                "returned, or the env URI `envship ship` printed"
            )
        return ref

    @classmethod
    def open(cls, uri: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
             ) -> Env:
        """The env at an env URI (`<store>/envs/<id>.json`), tag URI (`<store>/tags/<n>.json`),
        presigned manifest URL or packed env directory; the manifest is always checked against
        its env id."""
        from .store import open_store, redact_url

        uri = cls.uri_of(uri)  # a path, or StoreError for what names no env at all
        if _is_presigned(uri):
            return cls._open_presigned(uri)
        store_url, kind, ref = split_env_uri(uri)
        store = open_store(store_url, storage_options)
        if kind == "packed":
            env_id = _packed_env_id(ref)
        else:
            env_id = store.read_tag(ref) if kind == "tag" else ref
        manifest = store.read_manifest(env_id)  # checked against env_id
        if kind == "packed":
            return cls(store.env_uri(env_id), manifest, store.url, dict(store.storage_options))
        uri_out = redact_url(uri) if kind == "env" and "?" not in uri else store.env_uri(env_id)
        if uri_out.endswith(".presigned.json"):
            uri_out = store.env_uri(env_id)
        return cls(uri_out, manifest, store.url, dict(store.storage_options))

    @classmethod
    def _open_presigned(cls, url: str) -> Env:
        """A presigned manifest over HTTPS: read and verified by the node runtime's resolver."""
        from .node.resolve import resolve

        resolved = resolve(url)
        manifest = Manifest.from_dict(resolved.manifest, source=resolved.source, presigned=True)
        store_url = resolved.source.rsplit("/envs/", 1)[0] if "/envs/" in resolved.source else ""
        return cls(url, manifest, store_url)


def _is_presigned(uri: str) -> bool:
    return uri.split("?", 1)[0].endswith(".presigned.json") and uri.startswith(
        ("http://", "https://"))


def _packed_env_id(path: str) -> str:
    from .node.ref import packed_env_id

    return packed_env_id(path)


def open_manifest(
    ref: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> tuple[Manifest, str]:
    """(manifest, where it came from) for any env reference :meth:`Env.open` takes (checked
    against its env id), or a manifest file saved anywhere (which names no env id to check)."""
    text = os.fspath(ref)
    try:
        parse_ref(text)
    except ValueError as exc:
        if url_missing_slashes(text):
            raise ManifestError(str(exc)) from None
        path = Path(text.removeprefix("file://")).expanduser()
        if "://" in text and not text.startswith("file://"):
            raise ManifestError(
                f"{text} is not an env reference (<store>/envs/<env-id>.json, "
                "<store>/tags/<name>.json, a presigned manifest URL)"
            ) from None
        from .node.fetch import read_url

        data = read_url(str(path))  # a regular file, at most 64 MB: /dev/zero is one line
        return Manifest.from_json(data, source=str(path)), str(path)
    env = Env.open(text, storage_options)
    return env.manifest, env.uri


def locate_env(
    target: str, env: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> tuple[Store, str]:
    """(store, env id) that *target* names: an env URI, tag URI or packed env directory; or a
    store URL with *env* (an env id, id prefix or tag), else the one env that store holds."""
    from .store import open_store

    try:
        store_url, kind, ref = split_env_uri(target)
    except StoreError:
        if target.endswith(".json"):  # a file, not a store: say what an env URI looks like
            raise
        kind = "store"
    if kind in ("store", "packed"):  # a store (a local one is a directory)
        store = open_store(target, storage_options)
        store.check()  # a mistyped store path is an error, not "holds 0 envs"
        if env is not None:
            return store, store.resolve(env)
        ids = store.env_ids()
        if len(ids) != 1:
            raise StoreError(
                f"store {store.url} holds {len(ids)} envs: give an env URI "
                f"({store.url}/envs/<env-id>.json, or a tag's), or name one by env id, prefix "
                "or tag where the command takes --env"
            )
        return store, ids[0]
    store = open_store(store_url, storage_options)
    return store, (store.read_tag(ref) if kind == "tag" else ref)
