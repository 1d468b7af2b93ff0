"""Stdlib-only bytecode compiler run by the TARGET interpreter (``python -S -s -B thisfile``).

Reads batches on stdin until EOF, each an 8-byte little-endian length and that many bytes of
NUL-separated fields: ``checked|unchecked`` then ``source, dfile, out`` per file. Writes a
PEP 552 hash-based pyc for each file to ``out``, then answers the batch on stdout with an
8-byte length and ``index<TAB>error`` lines for the files that do not compile (none: empty).
Run by any CPython >= 3.8: stdlib only.
"""

# Determinism: marshal sets FLAG_REF on an object it meets for the first time when the
# object's refcount is above 1, whether or not the stream refers to it again. Refcounts depend
# on the process: CPython 3.10's method cache holds names by address (so ASLR decides, ~5 % of
# runs of json/decoder.py differ), and other versions hold names in other caches. So before
# dumping, this worker holds one more reference to every object marshal will write
# (:func:`_pinned`): all of them carry FLAG_REF, whatever else the process holds. The caller
# fixes PYTHONHASHSEED (frozenset constants are written in hash order).

import marshal
import struct
import sys
from importlib.util import MAGIC_NUMBER, source_hash

__all__ = ["main"]


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


def _compile_one(source: str, dfile: str, out: str, flags: bytes) -> None:
    with open(source, "rb") as fh:
        data = fh.read()
    code = compile(data, dfile, "exec", dont_inherit=True)
    pins = _pinned(code)
    pyc = MAGIC_NUMBER + flags + source_hash(data) + marshal.dumps(code)
    del code, pins
    with open(out, "wb") as fh:
        fh.write(pyc)


def _batch(fields: "list[bytes]") -> bytes:
    import os

    flags = (3 if fields[0] == b"checked" else 1).to_bytes(4, "little")
    jobs = fields[1:]
    failed = []
    for i in range(len(jobs) // 3):
        source, dfile, out = (os.fsdecode(x) for x in jobs[3 * i:3 * i + 3])
        try:
            _compile_one(source, dfile, out, flags)
        except Exception as exc:  # noqa: BLE001 - py2 syntax, NUL bytes, bad encodings, ...
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
            failed.append(f"{i}\t{msg}\n")
    return "".join(failed).encode("utf-8", "replace")


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
