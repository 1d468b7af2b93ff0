"""`envship store verify`: every manifest and tag checked against the blobs it needs.

Damage is rechecked before it is reported, so a gc or ship running meanwhile is not mistaken
for damage; `repair` re-uploads damaged blobs from local copies (the build cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from . import protocol as p
from . import retry
from .fs import StoreLocation, read_bounded
from .listing import env_entries
from .refs import BadManifest, BlobRef, read_all_refs
from .tags import ENV_ID_RE
from .transfer import CHUNK, PART, upload_file

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


def _blob_sizes(loc: StoreLocation, policy: retry.RetryPolicy) -> dict[str, int]:
    def ls() -> list[dict[str, Any]]:
        path = loc.path("blobs", "sha256")
        try:
            return loc.ls(path, detail=True)
        except FileNotFoundError:
            return []

    try:
        entries = retry.call(ls, "listing blobs/", loc, policy)
    except Exception as exc:
        raise retry.as_store_error(exc, "listing blobs/", loc) from None
    out = {}
    for e in entries:
        name = str(e["name"]).rstrip("/").rpartition("/")[2]
        if name.endswith(".tar.gz") and not name.startswith("."):
            out["sha256:" + name[: -len(".tar.gz")]] = int(e.get("size") or 0)
    return out


def _blob_size(loc: StoreLocation, digest: str, policy: retry.RetryPolicy) -> int | None:
    path = loc.blob_path(digest)

    def info() -> int | None:
        loc.fs.invalidate_cache(path)
        try:
            return int(loc.fs.info(path).get("size") or 0)
        except FileNotFoundError:
            return None

    return retry.call(info, f"checking blob {digest}", loc, policy)


def _exists(loc: StoreLocation, path: str, policy: retry.RetryPolicy) -> bool:
    def look() -> bool:
        loc.fs.invalidate_cache(path)
        return bool(loc.fs.exists(path))

    return retry.call(look, "checking a file", loc, policy)


def _store_hash(loc: StoreLocation, digest: str, policy: retry.RetryPolicy) -> str | None:
    path = loc.blob_path(digest)

    def read() -> str | None:
        h = hashlib.sha256()
        try:
            with loc.fs.open(path, "rb", block_size=PART) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            return None
        return h.hexdigest()

    return retry.call(read, f"re-hashing blob {digest}", loc, policy)


def _local_copy(digest: str, size: int, dirs: Sequence[Path]) -> Path | None:
    """A local file holding exactly blob *digest*, if any of *dirs* has one."""
    hexpart = digest.split(":", 1)[1]
    for d in dirs:
        path = Path(d) / f"{hexpart}.tar.gz"
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


def _repair(loc: StoreLocation, digest: str, size: int, dirs: Sequence[Path],
            policy: retry.RetryPolicy) -> tuple[bool, str]:
    """Re-upload blob *digest* from a local copy: (repaired, what happened)."""
    local = _local_copy(digest, size, dirs)
    if local is None:
        return False, "no local copy to repair it from: ship the env again where it was built"
    hexpart = digest.split(":", 1)[1]

    def attempt() -> int:
        return upload_file(loc, local, loc.blob_path(digest), hexpart)

    try:
        retry.call(attempt, f"re-uploading blob {digest}", loc, policy)
    except Exception as exc:
        return False, f"repair failed: {retry.as_store_error(exc, 're-uploading', loc)}"
    if _blob_size(loc, digest, policy) != size:
        return False, "repair did not stick (the store reports another size)"
    log.info("re-uploaded blob %s from %s", digest, local)
    return True, f"re-uploaded from {local}"


def _tags(loc: StoreLocation, policy: retry.RetryPolicy) -> dict[str, str | Damage]:
    """tag name -> env id, or the damage reading it."""

    def ls() -> list[str]:
        path = loc.path("tags")
        try:
            return [str(e).rstrip("/").rpartition("/")[2] for e in loc.ls(path, detail=False)]
        except FileNotFoundError:
            return []

    out: dict[str, str | Damage] = {}
    for name in sorted(retry.call(ls, "listing tags/", loc, policy)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        tag = name[: -len(".json")]
        path = loc.tag_path(tag)

        def read(path: str = path, tag: str = tag) -> bytes:
            data: bytes = read_bounded(loc, path, f"tag {tag}")
            return data

        try:
            env_id = json.loads(retry.call(read, f"reading tag {tag}", loc, policy))["env"]
            if not isinstance(env_id, str) or not ENV_ID_RE.fullmatch(env_id):
                raise ValueError(f"bad env id {env_id!r}")
            out[tag] = env_id
        except FileNotFoundError:
            continue
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError,
                StoreError) as exc:
            out[tag] = Damage(BAD_TAG, f"tag {tag!r} is not a tag file ({exc})", tag=tag)
    return out


def verify(
    loc: StoreLocation,
    policy: retry.RetryPolicy,
    *,
    deep: bool = False,
    repair: bool = False,
    repair_from: Sequence[Path] | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Check every manifest and tag against the blobs; with *repair*, re-upload damaged blobs
    from *repair_from* (default: the local build cache)."""
    say = progress or (lambda _: None)
    env_ids = list(env_entries(loc, policy))
    say(f"reading {len(env_ids)} manifests")
    all_refs = read_all_refs(loc, env_ids, policy)
    tags = _tags(loc, policy)
    sizes = _blob_sizes(loc, policy)
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
        now = _blob_size(loc, ref.digest, policy)
        if now == ref.size or not _exists(loc, loc.env_path(env_id), policy):
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
            found = dict(zip(todo, pool.map(lambda d: _store_hash(loc, d, policy), todo),
                             strict=True))
        for digest, got_hex in found.items():
            if got_hex is None:
                continue  # removed meanwhile: the second look above decides on such blobs
            hashed += expected[digest]
            if got_hex != digest.split(":", 1)[1]:
                users = sorted(e for e, rs in refs.items() if any(r.digest == digest for r in rs))
                for env_id in users:
                    damage.append(Damage(CORRUPT, f"env {env_id}: blob {digest} hashes to "
                                         f"sha256:{got_hex}", env_id, digest))
    for tag, target in tags.items():
        if isinstance(target, Damage):
            damage.append(target)
        elif target not in refs and not isinstance(all_refs.get(target), BadManifest) and (
                not _exists(loc, loc.env_path(target), policy)):
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
                outcome[d.digest] = _repair(loc, d.digest, expected[d.digest], dirs, policy)
            done, note = outcome[d.digest]
            fixed.append(Damage(d.kind, f"{d.detail}; {note}", d.env_id, d.digest, d.tag, done))
        damage = fixed
    notes = []
    try:
        leases = len(p.list_leases(loc, policy))
    except StoreError as exc:
        leases = 1
        notes.append(str(exc))
    sweeps = len(p.sweep_names(loc, policy))
    if leases:
        notes.append(f"{leases} lease(s): ships in flight, or left by killed ones (gc "
                     "removes those once stale)")
    if sweeps:
        notes.append(f"{sweeps} gc sweep marker(s): gcs in flight, or left by killed ones")
    return VerifyResult(loc.url, len(refs), len(tags), len(expected), hashed, tuple(damage),
                        deep, repair, leases, sweeps, tuple(notes))
