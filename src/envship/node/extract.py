"""Safe layer extraction: a tar.gz stream into a fresh directory, refusing anything that escapes."""

from __future__ import annotations

import os
import tarfile

from .errors import NodeError
from .gunzip import Gunzip, TooLarge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Readable(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...

__all__ = ["Limits", "extract_layer", "RATIO", "FLOOR", "SLACK"]

_DATA_FILTER = getattr(tarfile, "data_filter", None)  # 3.9.17+, 3.10.12+, 3.11.4+, 3.12+


# Schema 1/2 layers promise no unpacked size: a blob may inflate to this much at most.
RATIO = 200  # times its compressed size ...
FLOOR = 64 << 20  # ... plus this
SLACK = 1 << 20  # over a schema-3 layer's "unpacked" bytes


class Limits:
    """Upper bounds for one layer; defaults can be raised with environment variables.

    *files* and *total* are what the layer may hold (regular files, their bytes), *stream* what
    its tar stream may inflate to; *promise* says where the bound comes from, for the error.
    """

    __slots__ = ("member", "total", "members", "files", "stream", "promise")

    def __init__(
        self, member: int, total: int, members: int, files: int | None = None,
        stream: int | None = None, promise: str = "",
    ) -> None:
        self.member = member
        self.total = total
        self.members = members
        self.files = files
        self.stream = stream
        self.promise = promise

    @classmethod
    def from_env(cls) -> Limits:
        from .fetch import env_int

        return cls(
            member=env_int("ENVSHIP_NODE_MAX_MEMBER", 8 << 30),
            total=env_int("ENVSHIP_NODE_MAX_LAYER", 64 << 30),
            members=env_int("ENVSHIP_NODE_MAX_FILES", 2_000_000),
        )

    @classmethod
    def for_layer(cls, lay: dict[str, Any]) -> Limits:
        """The bounds of the (checked) manifest layer entry *lay*: schema 3 states its unpacked
        bytes and file count; older layers get a decompression-ratio cap and their count."""
        base = cls.from_env()
        files = lay.get("files")
        files = files if isinstance(files, int) and files >= 0 else None
        unpacked = lay.get("unpacked")
        if isinstance(unpacked, int):
            total, promise = unpacked + SLACK, f"the manifest says {unpacked} bytes"
        else:
            total = RATIO * int(lay["size"]) + FLOOR
            promise = f"{RATIO} times its {lay['size']} compressed bytes"
        if base.total < total:  # $ENVSHIP_NODE_MAX_LAYER is the tighter bound
            total, promise = base.total, ""
        # tar headers and padding: about 1 KiB per member, directories included
        stream = total + 2048 * ((files if files is not None else base.members) + 1) + FLOOR
        return cls(base.member, total, base.members, files, stream, promise)


def extract_layer(
    stream: Readable, dest: str, layer: str, limits: Limits,
    digests: dict[str, str] | None = None,
) -> int:
    """Unpack the tar.gz *stream* into the empty directory *dest*; return the bytes written.

    Refuses (NodeError naming *layer* and the member) absolute names, ``..``, links leaving the
    layer, devices/fifos, duplicates and oversized members; nothing is written outside *dest*.
    Files are created read-only (0444, or 0555 if executable); directories stay 0755 until the
    layer is committed. *digests*, if given, receives each regular file's sha256 (hex) by
    layer-relative path, computed while it is written (``ENVSHIP_VERIFY`` checks them later).
    """
    import hashlib

    root = os.path.realpath(dest)
    seen: set[str] = set()
    files: set[str] = set()
    made_dirs: set[str] = {""}
    links: set[str] = set()  # symlinks unpacked so far (layer-relative)
    total = 0
    count = 0

    def broken(why: str) -> NodeError:
        return NodeError(
            f"layer {layer}: {why} ({limits.promise}); the blob is not what the env id promised, "
            "refusing it"
        )

    regular = 0

    def fail(member: str, why: str) -> NodeError:
        return NodeError(
            f"layer {layer}: refusing member {member!r}: {why}; the layer blob is unsafe, "
            "nothing from it was used"
        )

    def clean(name: str, member: str) -> str:
        if not name or name.startswith("/") or "\\" in name or "\0" in name:
            raise fail(member, "absolute or malformed path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not parts:
            return ""
        if ".." in parts:
            raise fail(member, "path contains '..'")
        return "/".join(parts)

    def through_link(rel: str) -> bool:
        """Does the layer-relative directory *rel* pass through a symlink unpacked earlier?"""
        while rel and links:
            if rel in links:
                return True
            rel = rel.rpartition("/")[0]
        return False

    def inside(path: str) -> bool:
        real = os.path.realpath(path)
        return real == root or real.startswith(root + os.sep)

    try:
        # Our own gunzip thread + a plain tar stream: tarfile's "r|gz" slices its whole
        # decompressed buffer on every 512-byte header read and inflates in this thread.
        gz = Gunzip(stream, limits.stream)
    except (OSError, RuntimeError) as exc:
        raise NodeError(f"layer {layer}: cannot start unpacking ({exc})") from None
    try:
        tar = tarfile.open(fileobj=gz, mode="r|", bufsize=16 << 10)  # type: ignore[call-overload]  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        gz.close()
        raise NodeError(f"layer {layer}: not a tar.gz blob ({exc})") from None
    try:
        for member in tar:
            count += 1
            if count > limits.members:
                raise fail(member.name, f"more than {limits.members} members")
            name = clean(member.name, member.name)
            if name in seen:
                raise fail(member.name, "duplicate member")
            seen.add(name)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise fail(member.name, "device, fifo or other special file")
            # Our checks cover the data filter's for files and directories (a path without '..'
            # and no symlink on the way cannot leave the layer); links also get the stdlib's.
            parent = os.path.dirname(name)
            linked = through_link(parent)
            if _DATA_FILTER is not None and (member.issym() or member.islnk() or linked):
                try:
                    _DATA_FILTER(member, root)
                except tarfile.FilterError as exc:
                    raise fail(member.name, str(exc)) from None
            if not name:
                continue
            path = os.path.join(root, name)
            if linked and not inside(os.path.join(root, parent)):  # before creating anything
                raise fail(member.name, "its directory is a link leaving the layer")
            if parent not in made_dirs:
                os.makedirs(os.path.join(root, parent), 0o755, exist_ok=True)
                made_dirs.add(parent)
            if member.isdir():
                if name not in made_dirs:
                    os.mkdir(path, 0o755)
                    made_dirs.add(name)
                continue
            if member.issym():
                target = member.linkname
                if not target or target.startswith("/") or "\0" in target:
                    raise fail(member.name, f"symlink to absolute path {target!r}")
                resolved = os.path.normpath(os.path.join(root, parent, target))
                if not (resolved == root or resolved.startswith(root + os.sep)):
                    raise fail(member.name, f"symlink {target!r} points outside the layer")
                os.symlink(target, path)
                links.add(name)
                if not inside(path):  # e.g. through another link: `d -> .`, `t -> d/..`
                    os.unlink(path)
                    raise fail(member.name, f"symlink {target!r} points outside the layer")
                continue
            if member.islnk():
                target = clean(member.linkname, member.name)
                if target not in files:
                    raise fail(member.name, f"hard link to {member.linkname!r}, not a file here")
                os.link(os.path.join(root, target), path)
                files.add(name)
                if digests is not None:
                    digests[name] = digests[target]
                continue
            if member.size > limits.member:
                raise fail(member.name, f"{member.size} bytes, over the {limits.member} limit")
            total += member.size
            regular += 1
            if limits.files is not None and regular > limits.files:
                raise broken(f"holds more than {limits.files} files")
            if total > limits.total:
                if not limits.promise:
                    raise fail(member.name, f"layer over the {limits.total} bytes limit")
                raise broken(f"unpacks to more than {limits.total} bytes")
            # Read-only from the start (the fd we write through is ours anyway): env views
            # hard-link these files, and running code must not change a verified layer.
            mode = 0o555 if member.mode & 0o111 else 0o444
            src = tar.extractfile(member)
            assert src is not None
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            sha = hashlib.sha256() if digests is not None else None
            with os.fdopen(fd, "wb") as out:
                remaining = member.size
                while remaining > 0:
                    chunk = src.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise fail(member.name, "truncated")
                    out.write(chunk)
                    if sha is not None:
                        sha.update(chunk)
                    remaining -= len(chunk)
            files.add(name)
            if sha is not None and digests is not None:
                digests[name] = sha.hexdigest()
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, TooLarge):
            if not limits.promise:
                raise NodeError(f"layer {layer}: over the {limits.total} bytes limit") from None
            raise broken(f"inflates to more than {limits.stream} bytes") from None
        if isinstance(exc, FileExistsError):
            raise NodeError(f"layer {layer}: member {exc.filename!r} written twice") from None
        raise NodeError(f"layer {layer}: damaged or unreadable tar ({exc})") from None
    finally:
        tar.close()
        gz.close()
    return total
