"""`envship spark-submit`: split the command line, add the env's confs, find `spark-submit`."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import EngineError
from .conf import DEFAULT_PRESIGN_EXPIRES, LIST_KEYS, conf, merge_list
from .local_cluster import find_spark_home
from .s3a import has_s3a, is_s3_url

if TYPE_CHECKING:
    from ...env import Env

log = logging.getLogger(__name__)

__all__ = [
    "SubmitOptions",
    "SubmitArgs",
    "split_args",
    "find_spark_submit",
    "local_modules",
    "submit_command",
    "plan_submit",
    "run_command",
]

# Files next to an application that are tooling, not modules the job imports.
_NOT_MODULES = frozenset({"setup.py", "conftest.py", "noxfile.py", "fabfile.py"})

# spark-submit options that take no value; every other option takes one.
_SPARK_FLAGS = frozenset({"--verbose", "-v", "--supervise", "--help", "-h", "--version"})
_LIST_FLAGS = {"--archives": "spark.archives", "--files": "spark.files",
               "--py-files": "spark.submit.pyFiles", "--jars": "spark.jars"}
# envship's own options, also accepted between ENV_URI and the application.
_OWN_VALUES = {"--mode": "mode", "--cache": "cache_dir", "--expires": "expires",
               "--driver-python": "driver_python",
               "--cache-dir": "cache_dir"}  # the old name of --cache
_OWN_FLAGS = {"--presign": ("presign", True), "--no-presign": ("presign", False),
              "--no-check": ("check", False), "--dry-run": ("dry_run", True),
              "--no-local-modules": ("local_modules", False)}


@dataclass(frozen=True)
class SubmitOptions:
    mode: str = "archives"
    cache_dir: str | None = None
    presign: bool | None = None
    expires: int = DEFAULT_PRESIGN_EXPIRES
    check: bool = True
    driver_python: str | None = None
    dry_run: bool = False
    local_modules: bool = True  # ship the .py modules next to the application
    storage_options: tuple[str, ...] = ()  # KEY=VALUE, to read the env from its store


@dataclass(frozen=True)
class SubmitArgs:
    """A spark-submit command line, taken apart."""

    spark_args: tuple[str, ...]  # options for spark-submit, list options removed
    app: str  # the application file
    app_args: tuple[str, ...]
    lists: dict[str, str] = field(default_factory=dict)  # spark.archives etc. given by the user
    confs: dict[str, str] = field(default_factory=dict)  # every --conf k=v given

    @property
    def master(self) -> str | None:
        return self.confs.get("spark.master")

    @property
    def deploy_mode(self) -> str:
        return self.confs.get("spark.submit.deployMode", "client")


def split_args(args: Sequence[str], options: SubmitOptions) -> tuple[SubmitArgs, SubmitOptions]:
    """Take *args* (what follows ENV_URI) apart: envship options, spark-submit options, the
    application and its arguments. Everything after the application belongs to it."""
    own: dict[str, object] = {}
    spark: list[str] = []
    lists: dict[str, str] = {}
    confs: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.partition("=")
        if name in _OWN_FLAGS and not eq:
            own_key, flag = _OWN_FLAGS[name]
            own[own_key] = flag
            i += 1
            continue
        if arg in _SPARK_FLAGS:
            spark.append(arg)
            i += 1
            continue
        if eq and name.startswith("--"):
            value, step = inline, 1
        elif i + 1 < len(args):
            value, step = args[i + 1], 2
        else:
            raise EngineError(f"spark-submit option {arg} needs a value")
        if name in _OWN_VALUES:
            own[_OWN_VALUES[name]] = value
        elif name in ("--storage-option", "-s"):
            previous = own.get("storage_options", options.storage_options)
            own["storage_options"] = (*previous, value)  # type: ignore[misc]
        elif name in _LIST_FLAGS:
            lists[_LIST_FLAGS[name]] = merge_list(lists.get(_LIST_FLAGS[name]), value)
        elif name in ("--conf", "-c"):
            key, sep, val = value.partition("=")
            if not sep:
                raise EngineError(f"--conf {value!r}: expected --conf key=value")
            if key in LIST_KEYS:
                lists[key] = merge_list(lists.get(key), val)
            else:
                confs[key] = val
                spark += ["--conf", value]
        else:
            if name == "--master":
                confs["spark.master"] = value
            elif name == "--deploy-mode":
                confs["spark.submit.deployMode"] = value
            spark += [name, value]
        i += step
    if i >= len(args):
        raise EngineError(
            "no application given: envship spark-submit ENV_URI [options] app.py [app args]"
        )
    if "expires" in own:
        try:
            own["expires"] = int(str(own["expires"]))
        except ValueError:
            raise EngineError(f"--expires {own['expires']!r}: expected seconds") from None
    merged = dataclasses.replace(options, **own)  # type: ignore[arg-type]
    return SubmitArgs(tuple(spark), args[i], tuple(args[i + 1 :]), lists, confs), merged


def find_spark_submit() -> str:
    """``$SPARK_HOME/bin/spark-submit``, the one in the pyspark package, or one on PATH."""
    try:
        candidate = find_spark_home() / "bin" / "spark-submit"
    except EngineError:
        candidate = None
    if candidate is not None and candidate.exists():
        return str(candidate)
    found = shutil.which("spark-submit")
    if found:
        return found
    raise EngineError(
        "spark-submit not found: install pyspark in this environment or set SPARK_HOME to a "
        "Spark distribution"
    )


def local_modules(app: str | os.PathLike[str]) -> list[str]:
    """The plain ``*.py`` modules next to *app* (the application file itself excluded), for
    ``spark.submit.pyFiles``: what ``import helper`` beside a job script finds on the driver."""
    path = Path(app).resolve()
    if not path.is_file():
        return []
    return [
        str(p)
        for p in sorted(path.parent.glob("*.py"))
        if p != path and p.name not in _NOT_MODULES and not p.name.startswith(("test_", "."))
    ]


def _default_master() -> str:
    """What spark-submit uses without --master: spark-defaults.conf, else local[*]."""
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    candidates = [Path(conf_dir)] if conf_dir else []
    if os.environ.get("SPARK_HOME"):
        candidates.append(Path(os.environ["SPARK_HOME"]) / "conf")
    for directory in candidates:
        path = directory / "spark-defaults.conf"
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                parts = line.strip().split(None, 1)
                if len(parts) == 2 and parts[0] == "spark.master":
                    return parts[1].strip()
    return os.environ.get("MASTER", "local[*]")


def submit_command(
    env: Env | str, submit: SubmitArgs, options: SubmitOptions, spark_submit: str | None = None
) -> list[str]:
    """The full spark-submit argv for running *submit* with its executors inside *env*."""
    master = submit.master or _default_master()
    program = spark_submit or find_spark_submit()
    presign = options.presign
    if presign is None and options.mode == "archives" and not isinstance(env, str):
        presign = _presign_for_missing_s3a(env, Path(program).resolve().parent.parent, submit)
    confs = conf(
        env, options.mode, master=master, deploy_mode=submit.deploy_mode,
        cache_dir=options.cache_dir, presign=presign, expires=options.expires,
    )
    if submit.deploy_mode == "client" and "spark.pyspark.driver.python" not in submit.confs:
        # The driver runs here, in the local env; without this it would use the executors'.
        confs["spark.pyspark.driver.python"] = options.driver_python or sys.executable
    if options.local_modules:
        modules = ",".join(local_modules(submit.app))
        confs["spark.submit.pyFiles"] = merge_list(confs.get("spark.submit.pyFiles"), modules)
    for key, value in submit.lists.items():
        confs[key] = merge_list(value, confs.get(key))
    confs = {k: v for k, v in confs.items() if v}
    cmd = [program]
    if not submit.master:
        cmd += ["--master", master]
    for key, value in confs.items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, *submit.spark_args, submit.app, *submit.app_args]


def _presign_for_missing_s3a(env: Env, spark_home: Path, submit: SubmitArgs) -> bool | None:
    """True (with a notice) when *env* lives on S3 but this Spark cannot read s3a:// URLs."""
    if env.is_presigned or not is_s3_url(env.store_url):
        return None
    requested = [*submit.lists.values(), *submit.confs.values(), *submit.spark_args]
    if has_s3a(spark_home, requested):
        return None
    log.warning(
        "%s has no S3A connector (hadoop-aws): executors get presigned HTTPS URLs of the "
        "layers instead (--no-presign if the cluster's Spark has S3A)", spark_home
    )
    return True


def plan_submit(
    env_ref: str, argv: Sequence[str], given: SubmitOptions
) -> tuple[list[str], SubmitOptions]:
    """The spark-submit argv for ``envship spark-submit ENV_REF ARGV...``: open the env (or take
    the PEX as it is), check that the application's local code matches the env's code layer,
    and add the env's confs. *given*: options parsed before ENV_REF (more may follow it).
    Returns the argv and the options in force."""
    from ...env import Env
    from ...store.fs import parse_storage_options
    from .check import require_code_match
    from .conf import open_env
    from .pex import wants_pex

    submit, options = split_args(list(argv), given)
    env: Env | str
    if wants_pex(env_ref, options.mode):
        env = env_ref  # a PEX: no manifest, no code layer to compare
    elif options.storage_options:
        env = Env.open(env_ref, parse_storage_options(list(options.storage_options)))
    else:
        env = open_env(env_ref)
    if isinstance(env, Env) and options.check and not options.dry_run:
        require_code_match(env, [str(Path(submit.app).resolve().parent)])
    return submit_command(env, submit, options), options


def run_command(cmd: Sequence[str]) -> int:
    """Run *cmd* in the foreground; its exit code (130 on Ctrl-C, as a shell reports it)."""
    import subprocess

    try:
        return subprocess.call(list(cmd))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        raise EngineError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
