"""File digests recorded when a layer is unpacked and a view assembled, and the check
``ENVSHIP_VERIFY=1`` runs on a view before a command starts: every file as it was recorded,
none added, none removed."""

from __future__ import annotations

import hashlib
import os
import stat

from .errors import NodeError

__all__ = ["RECORD", "record_layer", "record_view", "verify_view", "wanted"]

RECORD = ".envship-files"  # in a layer dir and in a view: one line per file, see _write
_SKIP = frozenset({RECORD, ".envship-size"})  # the cache's own bookkeeping


def wanted() -> bool:
    """Is ``ENVSHIP_VERIFY`` set (to anything but empty or 0)?"""
    return os.environ.get("ENVSHIP_VERIFY", "") not in ("", "0")


def _hash(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return sha.hexdigest()
            sha.update(chunk)


def _walk(root: str) -> dict[str, os.stat_result]:
    """Layer- or view-relative path -> lstat of every file and symlink below *root*."""
    out: dict[str, os.stat_result] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
                elif rel not in _SKIP:
                    out[rel] = st
    return out


def _record(root: str, known: dict[str, str], by_inode: dict[tuple[int, int], str]) -> None:
    lines = []
    for rel, st in sorted(_walk(root).items()):
        if stat.S_ISLNK(st.st_mode):
            what = "->" + os.readlink(os.path.join(root, rel))
        else:
            what = known.get(rel) or by_inode.get((st.st_dev, st.st_ino)) or _hash(
                os.path.join(root, rel))
        lines.append(f"{what}\0{rel}\n")
    with open(os.path.join(root, RECORD), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("".join(lines))


def _read(root: str) -> dict[str, str]:
    try:
        with open(os.path.join(root, RECORD), encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        raise NodeError(
            f"{root}: no file digests recorded (made by an older envship); remove it with "
            "`envship cache prune --all` so it is rebuilt, or unset ENVSHIP_VERIFY"
        ) from None
    out = {}
    for line in text.splitlines():
        what, _, rel = line.partition("\0")
        out[rel] = what
    return out


def record_layer(layer: str, digests: dict[str, str]) -> None:
    """Record every file of the unpacked *layer* (digests taken while unpacking; files written
    later, such as pycs compiled on the node, are hashed now)."""
    _record(layer, digests, {})


def record_view(view: str, layer_dirs: list[str]) -> None:
    """Record every file of the assembled *view*: files hard-linked from a layer take that
    layer's recorded digest; the view's own files and copies are hashed."""
    by_inode: dict[tuple[int, int], str] = {}
    for layer in layer_dirs:
        try:
            recorded = _read(layer)
        except NodeError:
            continue
        for rel, what in recorded.items():
            if not what.startswith("->"):
                try:
                    st = os.lstat(os.path.join(layer, rel))
                except OSError:
                    continue
                by_inode[(st.st_dev, st.st_ino)] = what
    _record(view, {}, by_inode)


def _check(root: str, what: str) -> None:
    recorded = _read(root)
    found = _walk(root)
    extra = sorted(set(found) - set(recorded))
    missing = sorted(set(recorded) - set(found))
    bad = extra[:1] or missing[:1]
    if not bad:
        for rel, st in sorted(found.items()):
            want = recorded[rel]
            if stat.S_ISLNK(st.st_mode):
                have = "->" + os.readlink(os.path.join(root, rel))
            elif stat.S_ISREG(st.st_mode):
                have = _hash(os.path.join(root, rel))
            else:
                have = "special file"
            if have != want:
                bad = [rel]
                break
    if bad:
        how = "was added" if extra else "is missing" if missing else "was changed"
        raise NodeError(
            f"{what} {root}: {bad[0]} {how} since it was unpacked (ENVSHIP_VERIFY); not running "
            "it: remove it with `envship cache prune --all` and run again"
        )


def verify_view(view: str) -> None:
    """NodeError unless every file of *view* (and of the layers a schema-1 view reads in
    place) is as recorded when it was made."""
    _check(view, "env view")
    root = os.path.dirname(os.path.dirname(view))
    try:
        with open(os.path.join(view, "envship-layers"), encoding="ascii") as f:
            hexes = [line.strip() for line in f if line.strip()]
    except OSError:
        hexes = []
    lib = os.path.join(view, "lib")
    merged = not any(
        os.path.exists(os.path.join(lib, d, "site-packages", "_envship.pth"))
        for d in (os.listdir(lib) if os.path.isdir(lib) else ())
    )
    from .cache import LAYERS

    for hex_ in hexes:
        layer = os.path.join(root, LAYERS, hex_)
        # a merged view's files are its layers' inodes (or copies), checked above; the
        # interpreter of a python layer runs in place
        if not merged or os.path.isdir(os.path.join(layer, "python")):
            _check(layer, "layer")
