"""Stdlib-only bytecode compiler run by the TARGET interpreter (``python -S -s -B thisfile``).

Reads batches on stdin until EOF, each an 8-byte little-endian length and that many bytes of
NUL-separated fields: ``checked|unchecked``, ``not_before`` (see :func:`_installed_code`; empty:
never reuse), the compiler's fingerprint (for the bytecode cache's key), then ``source, dfile,
out, installed, package`` per file (*installed*: the pyc an installer wrote for the source, or
empty; *package*: ``<source sha256>:<pyc sha256>`` when both come from the interpreter's own
conda package, ``<source sha256>:`` when only the source's hash was recorded by its installer
(a RECORD row), or empty). Writes a PEP 552 hash-based pyc of
the module's canonical code (:func:`canonical`) to ``out``, taken from *installed* when it is
provably the bytecode of the source, else compiled; then answers the batch on stdout with an
8-byte length and one line per file: ``index<TAB>C<key>`` (compiled), ``index<TAB>R<key>``
(reused) or ``index<TAB>E<error>`` (does not compile); *key*: the hex sha256 of the
fingerprint, NUL, dfile, NUL and the source's bytes (the bytecode cache's key).
Run by any CPython >= 3.8: stdlib only.
"""

# Determinism: what marshal writes depends on more than the code's value. It writes an object
# once and back-references it only where the SAME object recurs, flags an object for such
# references when its refcount is above 1 (refcounts depend on the process: CPython 3.10's
# method cache holds names by address), and marks interned strings. A fresh compile and a
# loaded pyc of the same source hold equal values with other sharing and interning. So every
# code tree is rebuilt in one canonical form (:class:`_Canon`: one object per (type, exact
# value), interning by a fixed rule), and before dumping this worker holds one more reference
# to every object marshal will write (:func:`_pinned`): all of them carry FLAG_REF. The caller
# fixes PYTHONHASHSEED (frozensets are written in hash order).

import marshal
import os
import struct
import sys
from hashlib import sha256
from importlib.util import MAGIC_NUMBER, source_hash
from typing import Any

__all__ = ["canonical", "main"]


def _pinned(code: object) -> "list[object]":
    """Every object marshal writes for *code*: code objects' fields, tuple and frozenset
    items. Holding the list keeps each one's refcount above 1."""
    pins: list[object] = [code]
    todo = [code]
    while todo:
        obj = todo.pop()
        items = [getattr(obj, name) for name in _CODE_FIELDS] if type(obj) is _CODE else obj
        pins.extend(items)  # type: ignore[arg-type]
        todo.extend(x for x in items if type(x) in _NESTED)  # type: ignore[attr-defined]
    return pins


_CODE = type(_pinned.__code__)
# What marshal writes of a code object, as far as Python can see it (3.11+ keep their local
# names in a hidden tuple: co_varnames, co_cellvars and co_freevars hold the same strings).
_CODE_FIELDS = tuple(name for name in (
    "co_code", "co_consts", "co_names", "co_varnames", "co_freevars", "co_cellvars",
    "co_filename", "co_name", "co_qualname", "co_linetable", "co_exceptiontable",
) if hasattr(_CODE, name))
_NESTED = (_CODE, tuple, frozenset)
# The fields rebuilt in canonical form (co_code is copied into the code object on any version;
# 3.11+ rebuild their hidden local names tuple from co_varnames, co_freevars and co_cellvars).
_NAME_TUPLES = ("co_names", "co_varnames", "co_freevars", "co_cellvars")
_STORED_NAMES = _NAME_TUPLES if sys.version_info < (3, 11) else ("co_names",)
_NAME_STRS = tuple(name for name in ("co_name", "co_qualname") if hasattr(_CODE, name))
_TABLES = tuple(name for name in (
    ("co_linetable", "co_exceptiontable") if sys.version_info >= (3, 10) else ("co_lnotab",)
) if hasattr(_CODE, name))
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _names(code: Any, out: "set[str]") -> "set[str]":
    """Every name in *code*'s tree that is not ASCII (an ASCII identifier is all
    :data:`_NAME_CHARS`)."""
    for name in _NAME_TUPLES:
        out.update(x for x in getattr(code, name) if not x.isascii())
    for name in _NAME_STRS:
        if not getattr(code, name).isascii():
            out.add(getattr(code, name))
    for const in code.co_consts:
        if type(const) is _CODE:
            _names(const, out)
    return out


def _order(obj: Any) -> Any:
    """A sort key of a frozenset item that does not depend on hashes, ids or int repr limits."""
    kind = type(obj)
    if kind is str or kind is bytes:
        return (kind.__name__, obj)
    if kind is int:
        return ("int", hex(obj))
    if kind is float:
        return ("float", struct.pack("<d", obj))
    if kind is tuple or kind is frozenset:
        items = [_order(x) for x in obj]
        return (kind.__name__, tuple(items if kind is tuple else sorted(items)))
    return (kind.__name__, repr(obj))


class _Canon:
    """One module's code tree in canonical form: one object per (type, exact value) — so
    1, 1.0 and True, or 0.0 and -0.0, stay apart — frozensets built in a fixed order, and a
    string interned iff it is made of ASCII identifier characters (what CPython's code
    constructor interns anyway), at most one character long (CPython keeps one shared object
    for those) or a non-ASCII name of the module; any other string (docstrings, ``<lambda>``,
    qualified names) is a fresh, uninterned copy. The tuples of names are taken as the code
    constructor interned them."""

    def __init__(self, code: Any, filename: str) -> None:
        self.tree = code
        self.names: set[str] | None = None  # non-ASCII names, found when first needed
        self.memo: dict[Any, Any] = {}
        self.filename = self.text(filename)

    def text(self, s: str) -> str:
        got = self.memo.get(s)
        if got is None:
            if (len(s) <= 1 or _NAME_CHARS.issuperset(s)
                    or (not s.isascii() and s in self._names())):
                got = sys.intern(s)
            else:
                got = s[:1] + s[1:]  # a new object, never an interned one
            self.memo[s] = got
        return got

    def _names(self) -> "set[str]":
        if self.names is None:
            self.names = _names(self.tree, set())
        return self.names

    def name_tuple(self, names: "tuple[str, ...]") -> "tuple[str, ...]":
        """A tuple of names: the code constructor interned them (so they are the objects
        :meth:`text` gives), only the tuple is made canonical."""
        if not names:
            return names
        key = (tuple, tuple([id(x) for x in names]))
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = names
        return got

    def value(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str:  # most values: looked up here, without a call
            got = self.memo.get(obj)
            return self.text(obj) if got is None else got
        if kind is _CODE:
            return self.code(obj)
        items: Any = obj
        if kind is tuple:
            if not obj:
                return obj
            items = tuple(self.values(obj))
            key: Any = (kind, tuple([id(x) for x in items]))
        elif kind is frozenset:
            items = sorted(self.values(obj), key=_order)
            key = (kind, tuple([id(x) for x in items]))
        elif kind is bytes:
            key = obj
        elif kind is int:
            key = (kind, obj)
        elif kind is float:
            key = (kind, struct.pack("<d", obj))
        elif kind is complex:
            key = (kind, struct.pack("<dd", obj.real, obj.imag))
        else:  # None, Ellipsis, True, False: one object each already
            return obj
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = kind(items) if kind is tuple or kind is frozenset else obj
        return got

    def values(self, items: Any) -> "list[Any]":
        """:meth:`value` of each item; strings seen before and None (most items) are looked
        up without a call."""
        memo, value = self.memo, self.value
        return [x if x is None else (memo.get(x) or value(x)) if type(x) is str else value(x)
                for x in items]

    def code(self, code: Any) -> Any:
        fields: dict[str, Any] = {name: self.name_tuple(getattr(code, name))
                                  for name in _STORED_NAMES}
        for name in _TABLES:
            fields[name] = self.value(getattr(code, name))
        for name in _NAME_STRS:
            fields[name] = self.text(getattr(code, name))
        fields["co_consts"] = tuple(self.values(code.co_consts))
        fields["co_filename"] = self.filename
        return code.replace(**fields)


def canonical(code: Any, filename: str) -> Any:
    """*code* (compiled, or loaded from any pyc of its source) in the one form this worker
    writes, its ``co_filename`` set to *filename* throughout."""
    return _Canon(code, filename).code(code)


def _installed_code(path: str, data: bytes, mtime: int, not_before: int, package: str = ""
                    ) -> Any:
    """The code in the pyc at *path* if it is provably what compiling *data* (the source, last
    modified at *mtime* seconds) gives with this interpreter: same magic number, a source stamp
    that matches (timestamp: mtime and size; hash-based: the source's hash), written after the
    interpreter was installed (*not_before*, ns: a patch release keeps the magic number but
    may compile otherwise). With *package* (``<source sha256>:<pyc sha256>``: both files are
    the interpreter's own conda package's, which that very build compiled), the two files
    hashing as the package records them proves what the times prove otherwise (a package's
    files keep its build's mtimes); a timestamp pyc must still record the source's size. With
    only ``<source sha256>:`` (an installer's record of the source), the source must hash as
    recorded and the usual rules apply: a timestamp only proves mtime and size, so a source
    edited within the same second at the same size, or whose mtime was put back, is caught.
    Only plain pycs are offered (no ``opt-N``); future imports are in the code. Else None."""
    try:
        with open(path, "rb") as fh:
            written = os.fstat(fh.fileno()).st_mtime_ns
            pyc = fh.read()
    except OSError:
        return None
    source_sha, _, pyc_sha = package.partition(":")
    if source_sha and sha256(data).hexdigest() != source_sha:
        return None
    if pyc_sha:
        if sha256(pyc).hexdigest() != pyc_sha:
            return None
    elif written < not_before:
        return None
    if len(pyc) < 16 or pyc[:4] != MAGIC_NUMBER:
        return None
    flags = int.from_bytes(pyc[4:8], "little")
    if flags == 0:
        size = struct.pack("<I", len(data) & 0xFFFFFFFF)
        stamp = struct.pack("<I", mtime & 0xFFFFFFFF) + size
        if pyc[12:16] != size or (not pyc_sha and pyc[8:16] != stamp):
            return None
    elif flags not in (1, 3) or pyc[8:16] != source_hash(data):
        return None
    try:
        code = marshal.loads(pyc[16:])
    except (EOFError, ValueError, TypeError):
        return None
    return code if type(code) is _CODE else None


def _compile_one(source: str, dfile: str, out: str, flags: bytes, installed: str = "",
                 not_before: "int | None" = None, package: str = "", salt: bytes = b""
                 ) -> "tuple[bool, str]":
    """Write *source*'s canonical pyc to *out*: (True if *installed* gave its code, the
    bytecode cache's key of it given the compiler's fingerprint *salt*)."""
    with open(source, "rb") as fh:
        data = fh.read()
        mtime = int(os.fstat(fh.fileno()).st_mtime)
    key = sha256(salt + b"\0" + dfile.encode("utf-8", "surrogateescape") + b"\0" + data)
    code = None
    if installed and not_before is not None:
        code = _installed_code(installed, data, mtime, not_before, package)
    reused = code is not None
    if code is None:
        code = compile(data, dfile, "exec", dont_inherit=True)
    code = canonical(code, dfile)
    pins = _pinned(code)
    pyc = MAGIC_NUMBER + flags + source_hash(data) + marshal.dumps(code)
    del code, pins
    with open(out, "wb") as fh:
        fh.write(pyc)
    return reused, key.hexdigest()


def _batch(fields: "list[bytes]") -> bytes:
    flags = (3 if fields[0] == b"checked" else 1).to_bytes(4, "little")
    not_before = int(fields[1]) if fields[1] else None
    salt = fields[2]
    jobs = fields[3:]
    answer = []
    for i in range(len(jobs) // 5):
        source, dfile, out, installed, package = (os.fsdecode(x) for x in jobs[5 * i:5 * i + 5])
        try:
            reused, key = _compile_one(source, dfile, out, flags, installed, not_before, package,
                                       salt)
            answer.append(f"{i}\t{'R' if reused else 'C'}{key}\n")
        except Exception as exc:  # noqa: BLE001 - py2 syntax, NUL bytes, bad encodings, ...
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
            answer.append(f"{i}\tE{msg}\n")
    return "".join(answer).encode("utf-8", "replace")


def main() -> int:
    import warnings

    warnings.simplefilter("ignore")  # SyntaxWarnings of third-party code are not ours to show
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(8)
        if len(head) < 8:
            return 0
        (size,) = struct.unpack("<Q", head)
        answer = _batch(stdin.read(size).split(b"\0"))
        stdout.write(struct.pack("<Q", len(answer)) + answer)
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
