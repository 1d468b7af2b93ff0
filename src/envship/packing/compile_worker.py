"""Stdlib-only bytecode compiler run by the TARGET interpreter (``python -S -s -B thisfile``).

Reads NUL-separated fields on stdin: ``checked|unchecked`` then ``source, dfile, out`` per
file; writes a PEP 552 hash-based pyc for each to ``out``; prints ``index<TAB>error`` lines on
stdout for files that do not compile. Run by any CPython >= 3.8: stdlib only.
"""

# Determinism: marshal sets FLAG_REF on objects whose refcount is above 1, so on some
# versions (3.10, 3.13) the bytes depend on what else the process holds. This worker holds
# nothing from one file to the next (each code object is dropped before the next compile),
# and its caller fixes PYTHONHASHSEED (frozenset constants are written in hash order).

import marshal
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


def main() -> int:
    import os
    import warnings

    warnings.simplefilter("ignore")  # SyntaxWarnings of third-party code are not ours to show
    fields = sys.stdin.buffer.read().split(b"\0")
    checked = fields[0] == b"checked"
    flags = (3 if checked else 1).to_bytes(4, "little")
    jobs = fields[1:]
    failed = []
    for i in range(len(jobs) // 3):
        source, dfile, out = (os.fsdecode(x) for x in jobs[3 * i:3 * i + 3])
        try:
            _compile_one(source, dfile, out, flags)
        except Exception as exc:  # noqa: BLE001 - py2 syntax, NUL bytes, bad encodings, ...
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
            failed.append(f"{i}\t{msg}")
    sys.stdout.write("".join(line + "\n" for line in failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
