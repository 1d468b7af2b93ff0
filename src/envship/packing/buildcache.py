"""Build cache: layer input fingerprint -> finished blob, so unchanged layers are never rebuilt."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import PackError
from ..node.formats import BLOBS, FINGERPRINTS, blob_key, fingerprint_key
from ..paths import build_cache_dir
from .archive import COMPRESS_LEVEL, Blob, content_key, transformed
from .layers import LayerEntry, LayerPlan

__all__ = [
    "FORMAT_VERSION", "BuildCache", "SharedCache", "content_fingerprint", "fingerprint",
    "SHARED_KINDS",
]

log = logging.getLogger(__name__)

# A temp file nobody wrote to for this long is a leftover of a killed pack (a live one is
# written continuously); sweeping it must never race with another process still packing.
STALE_TEMP_SECONDS = 3600.0

# Bump whenever the bytes a plan turns into change (archive format, path rules, transforms).
# 3: no INSTALLER/REQUESTED, RECORD rows sorted; 4: no direct_url.json in any layer.
FORMAT_VERSION = "envship.layer/4"


# Where the shapes of layers stored by content are noted (see BuildCache.may_hold_contents).
SHAPES = "shapes"
# blob hex -> the content fingerprint it was stored under (what the team cache maps it from)
CONTENTS = "contents"

# Layers a team build cache maps (code layers change with every edit and weigh kilobytes).
SHARED_KINDS = ("python", "conda", "dist")


class SharedCache(Protocol):
    """A team build cache: content fingerprint -> a blob somebody already built and stored
    (the store's ``fingerprints/``; see :mod:`envship.store.teamcache`)."""

    def lookup(self, fingerprints: Sequence[str]) -> Mapping[str, Blob]:
        """The fingerprints it knows whose blob is still there; their blobs (path None)."""


def _stat_key(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise PackError(
            f"cannot read {path} ({exc.strerror}): it vanished or is listed in a RECORD but "
            "missing; reinstall the package it belongs to."
        ) from exc
    return f"{st.st_size}:{st.st_mtime_ns}:{1 if st.st_mode & 0o111 else 0}"


def _content_key(path: str, entry: LayerEntry | None = None) -> str:
    """sha256 of what the layer will hold: the file's bytes after its transform (a RECORD or
    a script names the venv it was installed in; the rewritten form does not)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
            exe = os.fstat(fh.fileno()).st_mode & 0o111
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror}; fix it or exclude it.") from exc
    if entry is not None:
        data = transformed(entry, data)
    return content_key(hashlib.sha256(data).hexdigest(), bool(exe))


def _entry_key(entry: LayerEntry, mode: str, known: Mapping[str, str]) -> str:
    if entry.transform == "symlink":
        return "symlink:" + entry.source
    if mode == "content":
        key = known.get(entry.arcname) or _content_key(entry.source, entry)
    elif mode == "record" and entry.known_hash:
        # The installer's hash names the content; the stat notices later edits or removals.
        key = entry.known_hash + ":" + _stat_key(entry.source)
    else:
        key = _stat_key(entry.source)
    if entry.relocate is not None and mode != "content":  # content: prefix undone already
        key += "|" + "\x1f".join(entry.relocate)
    if entry.transform == "record":
        key += "|" + "\x1f".join(sorted(entry.record_keep)) + "|" + "\x1f".join(
            sorted(entry.record_blank)
        )
    return key


def fingerprint(plan: LayerPlan, mode: str | None = None,
                known: Mapping[str, str] | None = None) -> str:
    """sha256 over what determines a layer's bytes: arcnames, transforms, file identities
    (by the plan's fingerprint mode, or *mode*). *known*: content keys already taken
    (arcname -> :func:`~.archive.content_key`, e.g. by the archiver); the others are read."""
    mode = mode or plan.fingerprint_mode
    known = known or {}
    h = hashlib.sha256()
    head = [FORMAT_VERSION, f"gzip-{COMPRESS_LEVEL}", plan.kind, mode, *plan.salt]
    h.update("\n".join(head).encode() + b"\n\n")
    unread = mode == "content" and sum(1 for e in plan.entries if e.arcname not in known) > 1
    if unread:
        with ThreadPoolExecutor(2, thread_name_prefix="envship-hash") as pool:
            keys = list(pool.map(lambda e: _entry_key(e, mode, known), plan.entries))
    else:
        keys = [_entry_key(e, mode, known) for e in plan.entries]
    lines = [f"{e.arcname}\t{e.transform}\t{k}\n" for e, k in zip(plan.entries, keys, strict=True)]
    h.update("".join(lines).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def content_fingerprint(plan: LayerPlan, known: Mapping[str, str] | None = None) -> str:
    """:func:`fingerprint` by file contents: the same distribution installed in another venv
    (other paths, other mtimes) has the same one, so its blob is found without rebuilding."""
    return fingerprint(plan, "content", known)


def _shape(plan: LayerPlan) -> str:
    """What two layers of the same contents share before any file is read: kind, target
    interpreter, distributions (their dist-info names are among the paths)."""
    head = [FORMAT_VERSION, plan.kind, *plan.salt, "", *plan.dists]
    return hashlib.sha256("\n".join(head).encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class BuildCache:
    """Blobs and fingerprint entries under *root*, laid out as in a store
    (:mod:`envship.node.formats`: ``blob_key``, ``fingerprint_key``)."""

    root: Path

    @classmethod
    def default(cls) -> BuildCache:
        return cls(build_cache_dir())

    @property
    def blob_dir(self) -> Path:
        return self.root.joinpath(*BLOBS)

    def lookup(self, fp: str) -> Blob | None:
        """The blob built earlier from the same inputs, if it is still there and intact."""
        try:
            info = json.loads(self.root.joinpath(*fingerprint_key(fp)).read_text())
            digest, size, files = str(info["digest"]), int(info["size"]), int(info["files"])
            unpacked = int(info["unpacked"])  # entries of older envships lack it: rebuilt
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path = self.root.joinpath(*blob_key(digest))
        try:
            if path.stat().st_size != size:
                return None
        except OSError:
            return None
        return Blob(digest, size, files, path, unpacked)

    def may_hold_contents(self, plan: LayerPlan) -> bool:
        """False when no blob of *plan*'s shape was ever stored here by content, so looking
        it up by content cannot hit and its files need not be read for that (a cold cache).
        A cache written before shapes were noted answers True."""
        if self.root.joinpath(SHAPES, _shape(plan)).exists():
            return True
        return not self.root.joinpath(SHAPES).is_dir() and self.root.joinpath(
            *FINGERPRINTS).is_dir()

    def store_by_content(self, cfp: str, plan: LayerPlan, blob: Blob) -> None:
        """:meth:`store` under content fingerprint *cfp*, noting *plan*'s shape and, for the
        blob, *cfp* (:meth:`content_of`)."""
        self.store(cfp, blob)
        try:
            folder = self.root / SHAPES
            folder.mkdir(parents=True, exist_ok=True)
            folder.joinpath(_shape(plan)).touch()
            contents = self.root / CONTENTS
            contents.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=contents)
            with os.fdopen(fd, "w") as fh:
                fh.write(cfp)
            os.replace(tmp, contents / blob.digest.partition(":")[2])
        except OSError as exc:
            log.warning("cannot write build cache entry in %s: %s", self.root, exc)

    def content_of(self, digest: str) -> str | None:
        """The content fingerprint *digest*'s blob was stored under here, if it was."""
        try:
            cfp = (self.root / CONTENTS / digest.partition(":")[2]).read_text().strip()
        except OSError:
            return None
        return cfp if len(cfp) == 64 else None

    def sweep_temp(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove ``.tmp-*`` leftovers of killed packs; returns how many went."""
        cutoff = time.time() - older_than
        removed = 0
        for folder in (self.blob_dir, self.root.joinpath(*FINGERPRINTS), self.root / CONTENTS):
            try:
                names = [n for n in os.listdir(folder) if n.startswith(".tmp-")]
            except OSError:
                continue
            for name in names:
                path = folder / name
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except OSError:
                    continue  # gone already, or not ours to remove
        if removed:
            log.info("build cache %s: removed %d stale temp file(s)", self.root, removed)
        return removed

    def store(self, fp: str, blob: Blob) -> None:
        """Remember *blob* (already in :attr:`blob_dir`) under fingerprint *fp*."""
        fp_dir = self.root.joinpath(*FINGERPRINTS)
        data = json.dumps({"digest": blob.digest, "size": blob.size, "files": blob.files,
                           "unpacked": blob.unpacked})
        try:
            fp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=fp_dir)
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
            os.replace(tmp, self.root.joinpath(*fingerprint_key(fp)))
        except OSError as exc:  # a cache that cannot be written only costs speed
            log.warning("cannot write build cache entry in %s: %s", fp_dir, exc)
