"""A spark-submit command whose signed confs (presigned URLs) go through a private properties
file instead of its command line, which every user of the machine can read; and running it."""

from __future__ import annotations

import logging
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import EngineError
from ...store.io.location import has_signed_url, redact_signed_urls
from . import properties
from .base import REDACTION_CONF, redaction_regex
from .installation import defaults_file, spark_version

__all__ = ["SubmitCommand", "split_signed", "run_command"]

log = logging.getLogger(__name__)

LOAD_DEFAULTS = "--load-spark-defaults"  # Spark >= 4: spark-defaults.conf beside --properties-file


@dataclass(frozen=True)
class SubmitCommand:
    """``spark-submit`` with its options (*options*, the program first), then the application
    and its arguments (*app*). With *properties*, ``--properties-file FILE`` goes between
    them, FILE holding *properties*: the confs whose values carry signatures (*signed*), over
    the entries of *merged* (the user's properties file, or spark-defaults.conf)."""

    options: tuple[str, ...]
    app: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    signed: tuple[str, ...] = ()
    merged: str | None = None

    def argv(self, properties_file: str | None = None) -> list[str]:
        """The command line, with *properties_file* (where :attr:`properties` were written)."""
        if self.properties and properties_file is None:
            raise EngineError("this spark-submit command needs its properties file")
        extra = ["--properties-file", properties_file] if self.properties else []
        return [*self.options, *extra, *self.app]  # type: ignore[list-item]

    def shown(self, *, show_signatures: bool = False) -> str:
        """The command for screens and logs, presigned URLs redacted unless *show_signatures*;
        the signed confs follow as comment lines."""
        if not self.properties:
            text = shlex.join(self.argv())
        else:
            text = shlex.join(self.argv("PROPERTIES_FILE"))
            text += "\n# PROPERTIES_FILE: a file only you can read (mode 0600), removed when "
            text += "spark-submit exits, with these signed confs"
            if self.merged:
                others = len(set(self.properties) - set(self.signed))
                text += f" over the {others} entries of {self.merged}"
            text += ":\n" + "\n".join(f"#   {k}={self.properties[k]}" for k in self.signed)
        return text if show_signatures else redact_signed_urls(text)


def split_signed(
    options: Sequence[str],
    confs: Mapping[str, str],
    spark_args: Sequence[str],
    app: Sequence[str],
    *,
    spark_home: Path,
    properties_file: str | None = None,
) -> SubmitCommand:
    """The spark-submit command for *confs* (ours) and the user's *spark_args*, the confs
    whose values carry signatures moved into a properties file. With ``--properties-file``
    Spark reads no ``spark-defaults.conf`` (before 4.0; from 4.0 unless
    ``--load-spark-defaults``), so that file takes the user's *properties_file* in, else the
    defaults: by that flag on Spark 4, else by copying them (our keys win in both cases)."""
    signed = {k: v for k, v in confs.items() if has_signed_url(v)}
    if not signed:
        cmd = [*options]
        for key, value in confs.items():
            cmd += ["--conf", f"{key}={value}"]
        cmd += spark_args
        if properties_file is not None:
            cmd += ["--properties-file", properties_file]
        return SubmitCommand(tuple(cmd), tuple(app))
    base: dict[str, str] = {}
    merged: str | None = None
    load_defaults = False
    version = spark_version(spark_home)
    found = defaults_file(spark_home)
    if properties_file is not None:
        base, merged = properties.read(properties_file), properties_file
    elif version is not None and version >= (4, 0):
        load_defaults = LOAD_DEFAULTS not in spark_args
    else:  # Spark 3, or unknown: a copy of the defaults is right for every version
        if found is not None:
            base, merged = properties.read(found), str(found)
        else:
            log.warning("no spark-defaults.conf found (set SPARK_CONF_DIR or SPARK_HOME): the "
                        "presigned confs go through --properties-file, so Spark %s reads no "
                        "defaults of its own for this run",
                        ".".join(map(str, version)) if version else "of unknown version")
    if REDACTION_CONF in confs:  # widen the user's own patterns rather than replace them
        theirs = base.get(REDACTION_CONF)
        if theirs is None and load_defaults and found is not None:
            theirs = properties.read(found).get(REDACTION_CONF)
        confs = {**confs, REDACTION_CONF: redaction_regex(theirs)}
    cmd = [*options]
    for key, value in confs.items():
        if key not in signed:
            cmd += ["--conf", f"{key}={value}"]
    cmd += spark_args
    if load_defaults:
        cmd.append(LOAD_DEFAULTS)
    return SubmitCommand(tuple(cmd), tuple(app), {**base, **signed}, tuple(signed), merged)


class _Signalled(BaseException):
    """SIGTERM/SIGHUP while spark-submit ran, with no handler of the caller's to take it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_command(cmd: SubmitCommand | Sequence[str]) -> int:
    """Run *cmd* in the foreground; its exit code (130 on Ctrl-C, as a shell reports it).

    A :class:`SubmitCommand`'s properties file exists only while spark-submit runs. A
    SIGTERM or SIGHUP is passed on to spark-submit, the file removed, and then the signal
    takes its course here (the caller's handler, else the default: this process ends)."""
    if not isinstance(cmd, SubmitCommand):
        cmd = SubmitCommand(tuple(cmd))
    try:
        if not cmd.properties:
            return _run(cmd.argv())
        with properties.private_file(cmd.properties) as path:
            return _run(cmd.argv(path))
    except _Signalled as exc:
        signal.raise_signal(exc.signum)  # the handler in force again: SIG_DFL ends us here
        return 128 + exc.signum


def _run(argv: list[str]) -> int:
    try:
        proc = subprocess.Popen(argv)
    except OSError as exc:
        raise EngineError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    with _passing_signals_on(proc):
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to spark-submit as well
            proc.kill()
            proc.wait()
            return 130


@contextmanager
def _passing_signals_on(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous: dict[int, Any] = {}

    def forward(signum: int, frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)  # the caller's own handling (the CLI raises, and cleans up)
            return  # it chose to go on: the signal is not raised a second time
        raise _Signalled(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN and old is not None:  # None: a handler set from C
            previous[sig] = old
            signal.signal(sig, forward)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
