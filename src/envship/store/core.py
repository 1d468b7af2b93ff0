"""`Store`: one content-addressed store of envs at an fsspec URL."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from ..node.formats import ENVS, env_key, is_hex64, tag_key
from ..packing.manifest import Manifest
from ..progress import BytesDone, Progress
from .io import RetryPolicy, StoreIO, StoreLocation, open_location
from .io.location import blob
from .protocol import DEFAULT_GRACE, Step, Timing, no_step
from .publish import PublishResult, publish

if TYPE_CHECKING:  # reading, tags, gc, presign and verify: loaded by the commands using them
    from ..packing.archive import Blob
    from .gc import GcResult
    from .listing import EnvInfo
    from .presign import PresignResult
    from .verify import VerifyResult

__all__ = ["Store", "open_store"]

log = logging.getLogger(__name__)


class Store:
    """Blobs, manifests and tags under one store root (layout: docs/formats.md)."""

    def __init__(self, location: StoreLocation, policy: RetryPolicy,
                 timing: Timing | None = None) -> None:
        self.location = location
        self.policy = policy
        self.io = StoreIO(location, policy)  # every operation goes through its primitives
        self.timing = timing or Timing()  # the publish/gc protocol's clocks (docs/store.md)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def url(self) -> str:
        """The store URL, without credentials."""
        return self.location.url

    @property
    def storage_options(self) -> Mapping[str, Any]:
        return self.location.storage_options

    # -- addresses ----------------------------------------------------------------
    def env_uri(self, env_id: str) -> str:
        return self.io.url_of(env_key(env_id))

    def blob_url(self, digest: str) -> str:
        return self.io.url_of(blob(digest))

    def tag_uri(self, name: str) -> str:
        return self.io.url_of(tag_key(name))

    def connect(self) -> None:
        """Set up the client (session, credentials, connection) now; errors surface later.

        `ship()` runs this while packing, so a warm ship pays only for its existence checks.
        """
        try:
            self.location.fs.exists(self.location.path(*ENVS))
        except Exception as exc:  # reported by the real operation, with retries
            log.debug("warm-up of %s failed: %s", self.url, self.location.scrub(str(exc)))

    # -- writing ------------------------------------------------------------------
    def publish(
        self,
        manifest: Manifest,
        blobs: Mapping[str, Path | None],
        progress: Progress | None = None,
        *,
        provenance: bool = True,
        step: Step = no_step,
    ) -> PublishResult:
        """Upload the blobs the store lacks, then the manifest; see :mod:`.publish`.

        *step* is called between the protocol's steps (tests use it to force interleavings).
        """
        return publish(self.io, manifest, blobs, progress=progress, provenance=provenance,
                       timing=self.timing, step=step)

    # -- the team build cache (content fingerprint -> blob) ---------------------------
    def lookup(self, fingerprints: Sequence[str]) -> Mapping[str, Blob]:
        """The build cache entries for *fingerprints* whose blob the store holds
        (:class:`envship.packing.buildcache.SharedCache`)."""
        from .teamcache import lookup

        return lookup(self.io, fingerprints)

    def record_builds(self, mappings: Mapping[str, Blob]) -> int:
        """Remember which blob each content fingerprint built (after publishing them)."""
        from .teamcache import record

        return record(self.io, mappings)

    def set_tag(self, name: str, env_id: str, *, step: Step = no_step) -> str:
        from .tags import set_tag

        return set_tag(self.io, name, env_id, self.timing, step)

    def gc(
        self,
        *,
        keep: int | None = None,
        older_than: float | None = None,
        grace: float = DEFAULT_GRACE,
        dry_run: bool = False,
        step: Step = no_step,
    ) -> GcResult:
        """Remove untagged envs outside *keep* / *older_than* and the blobs no env uses
        (docs/store.md); StoreError if the store does not exist (a mistyped URL)."""
        from . import gc as _gc  # loaded by the commands that collect

        self.check()
        return _gc.collect(self.io, keep=keep, older_than=older_than, grace=grace,
                           dry_run=dry_run, timing=self.timing, step=step)

    def presign(self, env_id: str, expires: int = 3600, output: Path | None = None
                ) -> PresignResult:
        from .presign import presign

        return presign(self.io, env_id, expires=expires, output=output)

    def verify(
        self,
        *,
        deep: bool = False,
        repair: bool = False,
        repair_from: Sequence[Path] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> VerifyResult:
        """Every manifest and tag against the blobs (present, right size; *deep*: re-hashed);
        *repair* re-uploads damaged blobs from *repair_from* (default: the build cache).
        StoreError if the store does not exist: a mistyped URL must not pass as "ok"."""
        from .verify import verify

        self.check()
        return verify(self.io, deep=deep, repair=repair, repair_from=repair_from,
                      progress=progress)

    # -- reading ------------------------------------------------------------------
    def read_manifest(self, env_id: str) -> Manifest:
        """The manifest of *env_id*, checked against it; EnvNotFound if it is not there."""
        from .fetch import read_manifest

        return read_manifest(self.io, env_id)

    def fetch_blob(self, digest: str, dest: Path, progress: BytesDone | None = None) -> Path:
        from .fetch import fetch_blob

        return fetch_blob(self.io, digest, Path(dest), progress)

    def read_tag(self, name: str) -> str:
        from .tags import read_tag

        return read_tag(self.io, name)

    def tags(self) -> dict[str, str]:
        from .tags import list_tags

        return list_tags(self.io)

    def env_ids(self) -> list[str]:
        from .listing import env_ids

        return env_ids(self.io)

    def list_envs(self, *, include_damaged: bool = False) -> list[EnvInfo]:
        """Every env, newest first (damaged ones too with *include_damaged*). A store that
        does not exist lists as empty: call :meth:`check` to tell a mistyped URL apart."""
        from .listing import list_envs

        return list_envs(self.io, include_damaged=include_damaged)

    def check(self) -> None:
        """StoreError unless the store exists (or is an empty directory)."""
        from .listing import check_store

        check_store(self.io)

    def resolve(self, ref: str) -> str:
        """An env id from a full id, a unique id prefix (≥ 6 hex digits) or a tag name."""
        if is_hex64(ref):
            return ref
        if len(ref) >= 6 and all(c in "0123456789abcdef" for c in ref):
            found = [e for e in self.env_ids() if e.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise StoreError(f"env id prefix {ref!r} is ambiguous in store {self.url}")
        tags = self.tags()
        if ref in tags:
            return tags[ref]
        short = (" (an env id prefix needs at least 6 hex digits)" if ref and len(ref) < 6
                 and all(c in "0123456789abcdef" for c in ref) else "")
        raise StoreError(
            f"no env or tag {ref!r} in store {self.url}{short}; see `envship store ls "
            f"{self.url}`"
        )


def open_store(
    url: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    *,
    retry_timeout: float | None = None,
) -> Store:
    """Open the store at *url*: a local path or any fsspec URL (s3://, gs://, hdfs://, ...).

    *retry_timeout* bounds the time spent retrying transient errors (default: the
    ``ENVSHIP_STORE_RETRY_TIMEOUT`` environment variable, else 30 s).
    """
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"{url!r} is not a store: give a local path or a URL such as "
                         "s3://team-bucket/envs")
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise StoreError(f"storage_options must be a mapping (like {{'anon': True}}), not "
                         f"{type(storage_options).__name__}")
    location = open_location(url, storage_options)
    return Store(location, RetryPolicy.from_env(retry_timeout))
