"""Merge unpacked layers into one tree by hard links (copies where a link fails), uv-style."""

from __future__ import annotations

import errno
import os

from .errors import NodeError

__all__ = ["Merger"]

# link(2) errors that mean "links do not work here", not "this file is broken"
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.ENOSYS)


class Merger:
    """Hard-links the files of several source trees into one destination tree.

    Directories are created as real directories of the destination, so whatever running code
    writes (``__pycache__``, caches next to ``__file__``) lands there, never in a source.
    Two sources holding the same file path is a conflict (NodeError naming both).
    """

    __slots__ = ("linked", "copied", "places", "_owner", "_made", "_links_fail", "_keep_links")

    def __init__(self, keep_links: bool = False) -> None:
        # keep_links: symlinks keep their targets as written (a conda prefix view: they are
        # relative within the prefix, across packages too); else a target outside the merged
        # tree is pointed at where it is in its layer.
        self._keep_links = keep_links
        self.linked = 0
        self.copied = 0
        self._owner: dict[str, str] = {}  # destination path -> the layer it came from
        self._made: set[str] = set()
        self._links_fail = False  # after the first EXDEV-like failure, copy without trying
        # (source dir, destination dir) of the layer being merged: a symlink from one part of a
        # layer into another (data/lnk -> ../site-packages) is re-aimed, still relative
        self.places: list[tuple[str, str]] = []

    def merge(self, src: str, dest: str, label: str) -> None:
        """Merge the tree *src* (of layer *label*) into the directory *dest*."""
        if not os.path.isdir(src):
            return
        if dest not in self._made:
            os.makedirs(dest, exist_ok=True)
            self._made.add(dest)
        stack = [(src, dest)]
        while stack:
            s_dir, d_dir = stack.pop()
            with os.scandir(s_dir) as entries:
                for entry in entries:
                    d_path = os.path.join(d_dir, entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        if d_path not in self._made:
                            try:
                                os.mkdir(d_path)
                            except FileExistsError:
                                if not os.path.isdir(d_path) or os.path.islink(d_path):
                                    raise self._conflict(d_path, label) from None
                            self._made.add(d_path)
                        stack.append((entry.path, d_path))
                    elif entry.is_symlink():
                        self._symlink(entry.path, d_path, src, label)
                    else:
                        self._file(entry.path, d_path, label)

    def add_file(self, src: str, dest: str, label: str) -> None:
        """Merge the one file (or symlink) *src* as *dest*."""
        if os.path.islink(src):
            self._symlink(src, dest, os.path.dirname(src), label)
        else:
            self._file(src, dest, label)

    def _conflict(self, path: str, label: str) -> NodeError:
        other = self._owner.get(path, "the view itself")
        return NodeError(
            f"layers {other} and {label} both contain {path!r}: the env's layers must hold "
            "disjoint files; re-create the env with `envship pack`"
        )

    def _file(self, src: str, dest: str, label: str) -> None:
        if not self._links_fail:
            try:
                os.link(src, dest)
                self.linked += 1
                self._owner[dest] = label
                return
            except FileExistsError:
                raise self._conflict(dest, label) from None
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise NodeError(f"cannot link {src} into the env view: {exc}") from None
                self._links_fail = exc.errno == errno.EXDEV  # another filesystem: all will fail
        self._copy(src, dest, label)

    def _copy(self, src: str, dest: str, label: str) -> None:
        import shutil

        if os.path.lexists(dest):
            raise self._conflict(dest, label)
        shutil.copyfile(src, dest, follow_symlinks=False)
        os.chmod(dest, os.stat(src).st_mode & 0o555)
        self.copied += 1
        self._owner[dest] = label

    def _symlink(self, src: str, dest: str, root: str, label: str) -> None:
        target = os.readlink(src)
        resolved = os.path.normpath(os.path.join(os.path.dirname(src), target))
        if not self._keep_links and not (resolved == root or resolved.startswith(root + os.sep)):
            # points elsewhere in its layer: at the same file's place in the view, relatively
            # (never an absolute link into the layer, which running code could follow to it)
            for s_dir, d_dir in self.places:
                if resolved == s_dir or resolved.startswith(s_dir + os.sep):
                    mapped = d_dir + resolved[len(s_dir):]
                    target = os.path.relpath(mapped, os.path.dirname(dest))
                    break
            else:
                raise NodeError(
                    f"layer {label}: symlink {os.path.basename(src)} -> {target} points at "
                    "something the env view does not hold; re-create the env with `envship pack`"
                )
        try:
            os.symlink(target, dest)
        except FileExistsError:
            raise self._conflict(dest, label) from None
        self._owner[dest] = label
