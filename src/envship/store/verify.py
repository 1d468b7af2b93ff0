"""`envship store verify`: every manifest and tag checked against the blobs it needs.

Damage is rechecked before it is reported, so a gc or ship running meanwhile is not mistaken
for damage; `repair` re-uploads damaged blobs from local copies (the build cache).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..node.formats import blob_key, digest_hex, env_key
from . import protocol as p
from .exists import listed_blobs
from .io import StoreIO
from .io.location import blob
from .io.transfer import CHUNK
from .listing import env_entries
from .refs import BadManifest, BlobRef, read_all_refs
from .tags import all_tags

__all__ = ["Damage", "VerifyResult", "verify", "default_repair_dirs"]

log = logging.getLogger(__name__)

HASHERS = 4  # blobs re-hashed at once with deep=True

# Damage kinds.
MISSING, WRONG_SIZE, CORRUPT = "missing-blob", "wrong-size", "corrupt-blob"
BAD_MANIFEST, BAD_TAG, DANGLING_TAG = "bad-manifest", "bad-tag", "dangling-tag"


@dataclass(frozen=True)
class Damage:
    kind: str  # missing-blob, wrong-size, corrupt-blob, bad-manifest, bad-tag, dangling-tag
    detail: str
    env_id: str | None = None
    digest: str | None = None
    tag: str | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "env_id": self.env_id, "digest": self.digest,
                "tag": self.tag, "detail": self.detail, "repaired": self.repaired}


@dataclass(frozen=True)
class VerifyResult:
    store: str
    envs: int
    tags: int
    blobs: int  # distinct blobs referenced
    bytes_hashed: int  # deep only
    damage: tuple[Damage, ...]
    deep: bool
    repair: bool
    leases: int = 0  # publishes in flight (or stale leases of killed ones)
    sweeps: int = 0  # gcs in flight (or markers of killed ones)
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No damage left (everything found was repaired)."""
        return all(d.repaired for d in self.damage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store, "ok": self.ok, "envs": self.envs, "tags": self.tags,
            "blobs": self.blobs, "bytes_hashed": self.bytes_hashed, "deep": self.deep,
            "repair": self.repair, "leases": self.leases, "sweeps": self.sweeps,
            "damage": [d.to_dict() for d in self.damage], "notes": list(self.notes),
        }


def default_repair_dirs() -> list[Path]:
    """Where local copies of blobs live: the build cache (`<hex>.tar.gz` files)."""
    from ..packing.buildcache import BuildCache

    return [BuildCache.default().blob_dir]


def _local_copy(digest: str, size: int, dirs: Sequence[Path]) -> Path | None:
    """A local file holding exactly blob *digest*, if any of *dirs* has one."""
    hexpart = digest_hex(digest)
    for d in dirs:
        path = Path(d) / blob_key(digest)[-1]
        try:
            if path.stat().st_size != size:
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except OSError:
            continue
        if h.hexdigest() == hexpart:
            return path
    return None


def _repair(io: StoreIO, digest: str, size: int, dirs: Sequence[Path]) -> tuple[bool, str]:
    """Re-upload blob *digest* from a local copy: (repaired, what happened)."""
    local = _local_copy(digest, size, dirs)
    if local is None:
        return False, "no local copy to repair it from: ship the env again where it was built"
    try:
        io.upload(local, blob(digest), digest_hex(digest), what=f"blob {digest}")
    except StoreError as exc:
        return False, f"repair failed: {exc}"
    if io.size(blob(digest), f"blob {digest}") != size:
        return False, "repair did not stick (the store reports another size)"
    log.info("re-uploaded blob %s from %s", digest, local)
    return True, f"re-uploaded from {local}"


def verify(
    io: StoreIO,
    *,
    deep: bool = False,
    repair: bool = False,
    repair_from: Sequence[Path] | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Check every manifest and tag against the blobs; with *repair*, re-upload damaged blobs
    from *repair_from* (default: the local build cache)."""
    say = progress or (lambda _: None)
    env_ids = list(env_entries(io))
    say(f"reading {len(env_ids)} manifests")
    all_refs = read_all_refs(io, env_ids)
    tags = all_tags(io)
    sizes = listed_blobs(io)
    damage: list[Damage] = []
    refs: dict[str, tuple[BlobRef, ...]] = {}
    for env_id, got in all_refs.items():
        if isinstance(got, BadManifest):
            damage.append(Damage(BAD_MANIFEST, f"env {env_id}: {got.reason}", env_id=env_id))
        elif got is not None:
            refs[env_id] = got

    # Suspects first, then a second look at each: a concurrent gc removes a doomed env's
    # manifest before its blobs, so a blob missing under a manifest that is gone is no damage.
    expected: dict[str, int] = {}
    suspects: list[tuple[str, BlobRef]] = []
    for env_id, env_refs in refs.items():
        for ref in env_refs:
            expected.setdefault(ref.digest, ref.size)
            if sizes.get(ref.digest) != ref.size:
                suspects.append((env_id, ref))
    for env_id, ref in suspects:
        now = io.size(blob(ref.digest), f"blob {ref.digest}")
        if now == ref.size or not io.exists(env_key(env_id)):
            continue
        if now is None:
            damage.append(Damage(MISSING, f"env {env_id}: blob {ref.digest} is missing",
                                 env_id, ref.digest))
        else:
            damage.append(Damage(WRONG_SIZE, f"env {env_id}: blob {ref.digest} is {now} bytes, "
                                 f"the manifest says {ref.size}", env_id, ref.digest))
    hashed = 0
    if deep:
        bad = {d.digest for d in damage}
        todo = sorted(d for d in expected if d not in bad and sizes.get(d) == expected[d])
        say(f"re-hashing {len(todo)} blobs")
        with ThreadPoolExecutor(max_workers=HASHERS, thread_name_prefix="envship-hash") as pool:
            found = dict(zip(todo, pool.map(lambda d: io.digest(blob(d), f"blob {d}"), todo),
                             strict=True))
        for digest, got_hex in found.items():
            if got_hex is None:
                continue  # removed meanwhile: the second look above decides on such blobs
            hashed += expected[digest]
            if got_hex != digest_hex(digest):
                users = sorted(e for e, rs in refs.items() if any(r.digest == digest for r in rs))
                for env_id in users:
                    damage.append(Damage(CORRUPT, f"env {env_id}: blob {digest} hashes to "
                                         f"sha256:{got_hex}", env_id, digest))
    for tag, target in tags.items():
        if not isinstance(target, str):
            damage.append(Damage(BAD_TAG, f"tag {tag!r}: {target}", tag=tag))
        elif target not in refs and not isinstance(all_refs.get(target), BadManifest) and (
                not io.exists(env_key(target))):
            damage.append(Damage(DANGLING_TAG, f"tag {tag!r} points at env {target}, which is "
                                 "not in the store", env_id=target, tag=tag))
    if repair:
        dirs = list(repair_from) if repair_from is not None else default_repair_dirs()
        outcome: dict[str, tuple[bool, str]] = {}
        fixed = []
        for d in damage:
            if d.digest is None:
                fixed.append(d)
                continue
            if d.digest not in outcome:
                outcome[d.digest] = _repair(io, d.digest, expected[d.digest], dirs)
            done, note = outcome[d.digest]
            fixed.append(Damage(d.kind, f"{d.detail}; {note}", d.env_id, d.digest, d.tag, done))
        damage = fixed
    notes = []
    try:
        leases = len(p.list_leases(io))
    except StoreError as exc:
        leases = 1
        notes.append(str(exc))
    sweeps = len(p.sweep_names(io))
    if leases:
        notes.append(f"{leases} lease(s): ships in flight, or left by killed ones (gc "
                     "removes those once stale)")
    if sweeps:
        notes.append(f"{sweeps} gc sweep marker(s): gcs in flight, or left by killed ones")
    return VerifyResult(io.url, len(refs), len(tags), len(expected), hashed, tuple(damage),
                        deep, repair, leases, sweeps, tuple(notes))
