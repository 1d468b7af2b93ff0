"""Java ``.properties`` files as Spark reads them (``java.util.Properties`` over UTF-8), and a
private one (mode 0600, in a 0700 temp dir) that lives as long as one spark-submit run."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ...errors import EngineError

__all__ = ["dumps", "loads", "read", "private_file"]

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}
_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_KEY_SPECIAL = frozenset(" =:#!")
_WHITESPACE = " \t\f"


def _escape(text: str, *, key: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif (key and ch in _KEY_SPECIAL) or (ch == " " and i == 0):
            # a key ends at the first bare separator; a value's leading blanks are dropped
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def dumps(props: Mapping[str, str]) -> str:
    """*props* as the text of a properties file, one ``key=value`` line each, keys sorted (the
    same confs give the same bytes). Write it as UTF-8: Spark reads the file so."""
    lines = ["# Spark properties written by envship spark-submit for one run"]
    lines += [f"{_escape(k, key=True)}={_escape(v, key=False)}" for k, v in sorted(props.items())]
    return "\n".join(lines) + "\n"


def _logical_lines(text: str) -> Iterator[str]:
    """Natural lines joined where one ends in an odd number of backslashes; comments and
    blank lines dropped; leading blanks of every natural line removed."""
    pending: str | None = None
    for raw in re.split(r"\r\n|\r|\n", text):
        line = raw.lstrip(_WHITESPACE)
        if pending is None and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        joined = line[:-1] if trailing % 2 else line
        pending = joined if pending is None else pending + joined
        if trailing % 2 == 0:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def _unescape(text: str, where: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch if ch != "\\" else "")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise EngineError(f"{where}: malformed \\uXXXX escape")
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(_UNESCAPES.get(nxt, nxt))
            i += 2
    # \uD83D\uDE00 is one character written as two UTF-16 halves
    joined = "".join(out)
    return joined.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def loads(text: str, where: str = "properties") -> dict[str, str]:
    """The properties in *text*, read as ``java.util.Properties.load`` reads them (later keys
    win); values trimmed, as Spark trims them."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        i = 0
        while i < len(line) and not (line[i] in "=:" or line[i] in _WHITESPACE):
            i += 2 if line[i] == "\\" else 1
        key = line[:i]
        rest = line[i:].lstrip(_WHITESPACE)
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(_WHITESPACE)
        props[_unescape(key, where)] = _unescape(rest, where).strip()
    return props


def read(path: str | os.PathLike[str]) -> dict[str, str]:
    """The properties in the file at *path* (UTF-8); a one-line EngineError if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise EngineError(f"cannot read properties file {path}: {reason}") from None
    return loads(text, str(path))


_PREFIX = "envship-spark-"
STALE_SECONDS = 600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone's process
        return True
    return True


def sweep_stale(tmp: str | None = None) -> int:
    """Remove this user's private properties directories left by runs that were killed
    (``kill -9``: no ``finally`` ran): older than :data:`STALE_SECONDS` and named after a pid
    no process has; the files they hold carry signed URLs. A pid in use again keeps its
    directory until that process ends; the age rule spares a live run in another pid
    namespace sharing this temp dir (spark-submit reads the file as it starts). Returns how
    many went."""
    tmp = tmp or tempfile.gettempdir()
    cutoff = time.time() - STALE_SECONDS
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(_PREFIX)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        pid_text = name[len(_PREFIX):].partition("-")[0]
        path = os.path.join(tmp, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (not pid_text.isdigit() or st.st_uid != os.getuid() or not stat.S_ISDIR(st.st_mode)
                or st.st_mtime > cutoff or _alive(int(pid_text))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


@contextmanager
def private_file(props: Mapping[str, str]) -> Iterator[str]:
    """A properties file holding *props*, readable by this user only, for the ``with`` block;
    removed with its directory when the block ends, however it ends (and, after a
    ``kill -9``, by the next run: :func:`sweep_stale`)."""
    sweep_stale()
    directory = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")  # 0700
    try:
        path = os.path.join(directory, "spark.properties")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(props))
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)
