"""Runs one shipped call inside an env: reads a payload on stdin, writes the outcome to a file.

Executed by the env's own interpreter, so it imports only the standard library, plus
cloudpickle (from the env, or from the copy the payload carries when the env has none).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, BinaryIO

FORMAT = "envship.call/1"


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("payload truncated")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def main(argv: list[str]) -> int:
    out_path = argv[1]
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    if header.get("format") != FORMAT:
        raise SystemExit("envship runner: unknown payload format {!r}".format(header.get("format")))
    tmp_zip = None
    if header.get("cloudpickle_path"):
        sys.path.insert(0, header["cloudpickle_path"])
    elif header.get("cloudpickle_zip"):
        import tempfile

        blob = _read_exact(stdin, header["cloudpickle_zip"])
        fd, tmp_zip = tempfile.mkstemp(suffix=".zip", prefix="envship-cloudpickle-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        sys.path.insert(0, tmp_zip)
    body = _read_exact(stdin, header["body"])
    import cloudpickle

    try:
        func, items, mode = cloudpickle.loads(body)
        outcome: tuple[Any, ...]
        if mode == "call":
            args, kwargs = items
            outcome = ("ok", func(*args, **kwargs))
        else:
            outcome = ("ok", [func(item) for item in items])
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        tb = traceback.format_exc()
        try:
            pickled_exc = cloudpickle.dumps(exc)
        except Exception:  # noqa: BLE001 - unpicklable exception: send its text only
            pickled_exc = None
        outcome = ("err", pickled_exc, type(exc).__module__, type(exc).__qualname__, str(exc), tb)
    try:
        data = cloudpickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - unpicklable result
        msg = f"the function's result could not be pickled: {type(exc).__name__}: {exc}"
        data = cloudpickle.dumps(("err", None, "builtins", "TypeError", msg, ""))
    with open(out_path, "wb") as fh:
        fh.write(data)
    if tmp_zip:
        os.unlink(tmp_zip)
    if "--exit-status" in argv[2:] and outcome[0] == "err" and len(outcome) == 6:
        # No caller reads the outcome (a YARN container): the traceback goes to the log and
        # the exit code fails the container.
        sys.stderr.write(outcome[5] or f"{outcome[3]}: {outcome[4]}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
