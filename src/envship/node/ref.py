"""Env references: the one parser of what names an env (env URI, tag URI, presigned manifest
URL, packed directory), used by the node runtime and by the library alike."""

from __future__ import annotations

import os
import stat

from . import formats
from .errors import NodeError
from .formats import is_hex64

__all__ = [
    "EnvRef", "parse_ref", "packed_env_id", "split_ref", "ref_env_id", "is_hex64", "TAG_CHARS",
    "REF_VAR", "REF_FILE_VAR", "ref_from_environ", "URL_SCHEMES", "url_missing_slashes",
]

# The env reference handed to a launched process through its environment, not its argv:
# argv is in /proc/<pid>/cmdline, readable by every user of the node, and a presigned
# manifest URL carries signatures. `envship exec -- CMD` (no ENV_REF) reads it from here.
REF_VAR = "ENVSHIP_ENV"
# ... or a file holding it, readable by its owner only: for engines that put a process's
# environment on a command line too (Ray's worker start).
REF_FILE_VAR = "ENVSHIP_ENV_FILE"


def ref_from_environ() -> str | None:
    """The env reference ``$ENVSHIP_ENV`` names, else the one in the file
    ``$ENVSHIP_ENV_FILE`` names (NodeError unless only its owner can read it); None if unset."""
    ref = os.environ.get(REF_VAR, "")
    if ref:
        return ref
    path = os.environ.get(REF_FILE_VAR, "")
    if not path:
        return None
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)  # not through a symlink; a FIFO does not block
    except OSError as exc:
        raise NodeError(f"${REF_FILE_VAR} {path}: cannot read it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NodeError(f"${REF_FILE_VAR} {path}: not a regular file")
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise NodeError(f"${REF_FILE_VAR} {path}: readable by others or not yours (mode "
                            f"{st.st_mode & 0o777:o}); it may hold a signed URL: chmod 600 it")
        ref = os.read(fd, 1 << 16).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    if not ref:
        raise NodeError(f"${REF_FILE_VAR} {path} is empty")
    return ref

_ENVS, _TAGS = formats.ENVS[-1], formats.TAGS[-1]
TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

def split_ref(ref: str) -> tuple[str, str]:
    """(*ref* up to its last path component, the last component), ignoring any query string."""
    base = ref.split("?", 1)[0].split("#", 1)[0] if "://" in ref else ref
    head, _, name = base.rstrip("/").rpartition("/")
    return head, name


def ref_env_id(ref: str) -> str | None:
    """The env id an env URI or presigned-manifest URI names, without reading anything."""
    name = split_ref(ref)[1]
    for suffix in (".presigned.json", ".json"):
        if name.endswith(suffix) and is_hex64(name[: -len(suffix)]):
            return name[: -len(suffix)]
    return None


class EnvRef:
    """A parsed env reference; nothing is read. *kind* is one of:

    - ``env``: ``<store>/envs/<env-id>.json`` (*name* = env id; a ``<env-id>.json`` elsewhere
      has no *store*: its layers must carry URLs)
    - ``presigned``: ``…/<env-id>.presigned.json?…``, a self-contained manifest whose layers
      carry their own URLs (*name* = env id; *store* is where it sits, may be None)
    - ``tag``: ``<store>/tags/<name>.json`` (*name* = tag name)
    - ``packed``: a local directory holding one ``envs/<env-id>.json`` (*store* = it)
    """

    __slots__ = ("ref", "kind", "store", "name")

    def __init__(self, ref: str, kind: str, store: str | None, name: str) -> None:
        self.ref = ref
        self.kind = kind
        self.store = store
        self.name = name

    @property
    def env_id(self) -> str | None:
        return self.name if self.kind in ("env", "presigned") else None

    def __repr__(self) -> str:
        return f"EnvRef({self.kind}, store={self.store!r}, name={self.name!r})"


def _local_dir(ref: str) -> str | None:
    if "://" in ref and not ref.startswith("file://"):
        return None
    path = os.path.expanduser(ref[len("file://"):] if ref.startswith("file://") else ref)
    return path if os.path.isdir(path) else None


# URL schemes a store is commonly reached by: "s3:/b" is one of them missing its "//", not a
# local directory called "s3:" (the store layer adds every fsspec protocol to these).
URL_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "hdfs", "webhdfs", "az", "abfs", "abfss",
                         "http", "https", "file", "memory"})


def url_missing_slashes(text: str, schemes: frozenset[str] | set[str] = URL_SCHEMES
                        ) -> str | None:
    """The message for *text* when it is a URL of one of *schemes* without the ``//`` after
    its scheme (``s3:/bucket``, ``gs:b``), else None."""
    scheme, colon, rest = text.partition(":")
    if not colon or rest.startswith("//") or scheme.lower() not in schemes or "/" in scheme:
        return None
    meant = f"file:///{rest.lstrip('/')}" if scheme.lower() == "file" else (
        f"{scheme}://{rest.lstrip('/')}")
    return (f"{text!r} looks like a URL missing the '//' after '{scheme}:': write {meant} "
            f"(or ./{text} for a local path of that name)")


def parse_ref(ref: str) -> EnvRef:
    """Parse *ref*; a ValueError names what was expected when it is no env reference."""
    if not ref:
        raise ValueError("empty env reference")
    mistyped = url_missing_slashes(ref)
    if mistyped:
        raise ValueError(mistyped)
    packed = _local_dir(ref)
    if packed is not None:
        return EnvRef(ref, "packed", ref.rstrip("/") or "/", packed)
    head, name = split_ref(ref)
    store, parent = split_ref(head)[0], split_ref(head)[1]
    if name.endswith(".presigned.json") and is_hex64(name[: -len(".presigned.json")]):
        return EnvRef(ref, "presigned", store if parent == _ENVS else None,
                      name[: -len(".presigned.json")])
    if name.endswith(".json") and is_hex64(name[:-5]):  # a manifest outside envs/ has no store
        return EnvRef(ref, "env", (store or ".") if parent == _ENVS else None, name[:-5])
    if parent == _TAGS and name.endswith(".json") and name[:-5] and name[0] != "." and all(
        c in TAG_CHARS for c in name[:-5]
    ):
        return EnvRef(ref, "tag", store or ".", name[:-5])
    from .fetch import safe_url  # no signature in an error message

    raise ValueError(
        f"{safe_url(ref)} is not an env reference: expected <store>/envs/<env-id>.json, "
        "<store>/tags/<name>.json, <env-id>.presigned.json or a packed env directory "
        "(as printed by `envship ship`)"
    )


def packed_env_id(path: str) -> str:
    """The env id of the one manifest in a packed env directory (``<dir>/envs/<id>.json``)."""
    envs = os.path.join(path, *formats.ENVS)
    try:
        names = sorted(n for n in os.listdir(envs) if ref_env_id(n) and ".presigned" not in n
                       and not n.endswith(".provenance.json"))
    except OSError:
        names = []
    if len(names) != 1:
        found = f"{len(names)} manifests" if names else "no manifest"
        raise NodeError(
            f"{path}: a packed env directory holds exactly one envs/<env-id>.json, found {found}; "
            "pass the env URI (<store>/envs/<env-id>.json) instead"
        )
    return names[0][: -len(".json")]
