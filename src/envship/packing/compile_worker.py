"""Stdlib-only bytecode compiler run by the TARGET interpreter (``python -S -s -B thisfile``).

Reads batches on stdin until EOF, each an 8-byte little-endian length and that many bytes of
NUL-separated fields: ``checked|unchecked`` then ``source, dfile, out`` per file. Writes a
PEP 552 hash-based pyc for each file to ``out``, then answers the batch on stdout with an
8-byte length and ``index<TAB>error`` lines for the files that do not compile (none: empty).
Run by any CPython >= 3.8: stdlib only.
"""

# Determinism: marshal sets FLAG_REF on objects whose refcount is above 1, so on some
# versions (3.10, 3.13) the bytes depend on what else the process holds. This worker holds
# nothing from one file to the next (each code object is dropped before the next compile),
# and its caller fixes PYTHONHASHSEED (frozenset constants are written in hash order).

import marshal
import struct
import sys
from importlib.util import MAGIC_NUMBER, source_hash

__all__ = ["main"]


def _compile_one(source: str, dfile: str, out: str, flags: bytes) -> None:
    with open(source, "rb") as fh:
        data = fh.read()
    code = compile(data, dfile, "exec", dont_inherit=True)
    pyc = MAGIC_NUMBER + flags + source_hash(data) + marshal.dumps(code)
    del code
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
