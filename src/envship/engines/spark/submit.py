"""`envship spark-submit`: split the command line, add the env's confs, find `spark-submit`."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...env import Env, EnvRef
from ...errors import EngineError
from . import properties
from .base import DEFAULT_PRESIGN_EXPIRES
from .command import LOAD_DEFAULTS, SubmitCommand, run_command, split_signed
from .conf import LIST_KEYS, conf, merge_list
from .installation import defaults_file
from .local_cluster import find_spark_home

log = logging.getLogger(__name__)

__all__ = [
    "OWN_OPTIONS",
    "OwnOption",
    "SubmitOptions",
    "SubmitArgs",
    "SubmitCommand",
    "split_args",
    "split_command",
    "find_spark_submit",
    "local_modules",
    "submit_command",
    "plan_submit",
    "run_command",
]

# Files next to an application that are tooling, not modules the job imports.
_NOT_MODULES = frozenset({"setup.py", "conftest.py", "noxfile.py", "fabfile.py"})

# spark-submit options that take no value; every other option takes one.
_SPARK_FLAGS = frozenset({"--verbose", "-v", "--supervise", "--help", "-h", "--version",
                          "--load-spark-defaults"})
_LIST_FLAGS = {"--archives": "spark.archives", "--files": "spark.files",
               "--py-files": "spark.submit.pyFiles", "--jars": "spark.jars"}


@dataclass(frozen=True)
class SubmitOptions:
    """envship's own options of ``envship spark-submit`` (see :data:`OWN_OPTIONS`)."""

    mode: str = "archives"
    cache_dir: str | None = None
    presign: bool | None = None
    expires: int = DEFAULT_PRESIGN_EXPIRES
    check: bool = True
    driver_python: str | None = None
    dry_run: bool = False
    local_modules: bool = True  # ship the .py modules next to the application
    storage_options: tuple[str, ...] = ()  # KEY=VALUE, to read the env from its store
    show_signatures: bool = False  # --dry-run / -v print presigned URLs whole


@dataclass(frozen=True)
class OwnOption:
    """One of envship's own spark-submit options: the one declaration the parser, the
    CLI's help and docs/spark.md's table come from."""

    names: tuple[str, ...]
    field: str  # the SubmitOptions field it sets
    sets: bool | None = None  # a flag: the value it sets; None: the option takes a value
    metavar: str = ""
    help: str = ""
    hidden: bool = False  # an old name, still accepted


OWN_OPTIONS: tuple[OwnOption, ...] = (
    OwnOption(("--mode",), "mode", metavar="MODE",
              help="archives, node-cache or pex (implied by a .pex); default archives."),
    OwnOption(("--cache",), "cache_dir", metavar="DIR",
              help="node-cache mode: the node cache on executors (as `envship exec --cache`)."),
    OwnOption(("--cache-dir",), "cache_dir", metavar="DIR", hidden=True,
              help="Old name of --cache."),
    OwnOption(("--presign",), "presign", sets=True,
              help="Hand executors presigned HTTPS URLs (default: when they could not read "
                   "the store otherwise)."),
    OwnOption(("--no-presign",), "presign", sets=False, help="Never presign."),
    OwnOption(("--expires",), "expires", metavar="SECONDS",
              help=f"Presigned URL lifetime (default {DEFAULT_PRESIGN_EXPIRES})."),
    OwnOption(("--no-check",), "check", sets=False,
              help="Do not compare the local code with the env."),
    OwnOption(("--driver-python",), "driver_python", metavar="PATH",
              help="Driver Python (default: this one)."),
    OwnOption(("--no-local-modules",), "local_modules", sets=False,
              help="Do not ship the .py files next to the app."),
    OwnOption(("--storage-option", "-s"), "storage_options", metavar="KEY=VALUE",
              help="fsspec storage option to read the env (repeatable), as for `envship ship`."),
    OwnOption(("--dry-run",), "dry_run", sets=True,
              help="Check the local code, print the spark-submit command, do not run it."),
    OwnOption(("--show-signatures",), "show_signatures", sets=True,
              help="Show presigned URLs whole in --dry-run and -v output (redacted by default)."),
)
_OWN = {name: opt for opt in OWN_OPTIONS for name in opt.names}


@dataclass(frozen=True)
class SubmitArgs:
    """A spark-submit command line, taken apart."""

    spark_args: tuple[str, ...]  # options for spark-submit, list options removed
    app: str  # the application file
    app_args: tuple[str, ...]
    lists: dict[str, str] = field(default_factory=dict)  # spark.archives etc. given by the user
    confs: dict[str, str] = field(default_factory=dict)  # every --conf k=v given
    properties_file: str | None = None  # --properties-file, not in spark_args

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
    properties_file: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        taken = _take_own(args, i, own)
        if taken:
            i = taken
            continue
        name, eq, inline = arg.partition("=")
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
        if name == "--properties-file":
            properties_file = value
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
    if "storage_options" in own:  # -s after ENV_URI adds to those before it
        own["storage_options"] = (*options.storage_options, *own["storage_options"])  # type: ignore[misc]
    merged = dataclasses.replace(options, **_typed(own))  # type: ignore[arg-type]
    submit = SubmitArgs(tuple(spark), args[i], tuple(args[i + 1 :]), lists, confs,
                        properties_file)
    return submit, merged


def split_command(argv: Sequence[str]) -> tuple[str, SubmitArgs, SubmitOptions]:
    """``[envship options] ENV_URI [envship and spark-submit options] app.py [app args]``
    taken apart: (ENV_URI, the spark-submit part, envship's options)."""
    own: dict[str, object] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        taken = _take_own(argv, i, own)
        if not taken:
            raise EngineError(
                f"{argv[i]}: only envship's options may come before ENV_URI; spark-submit's "
                "go after it"
            )
        i = taken
    if i >= len(argv):
        raise EngineError(
            "no env given: envship spark-submit ENV_URI [options] app.py [app args]"
        )
    given = dataclasses.replace(SubmitOptions(), **_typed(own))  # type: ignore[arg-type]
    submit, options = split_args(argv[i + 1 :], given)
    return argv[i], submit, options


def _take_own(args: Sequence[str], i: int, own: dict[str, object]) -> int:
    """If ``args[i]`` is one of envship's options, record it in *own* and return the index
    after it (and its value); else 0."""
    name, eq, inline = args[i].partition("=")
    opt = _OWN.get(name)
    if opt is None:
        return 0
    if opt.sets is not None:
        if eq:
            raise EngineError(f"{name} takes no value")
        own[opt.field] = opt.sets
        return i + 1
    if eq:
        value, after = inline, i + 1
    elif i + 1 < len(args):
        value, after = args[i + 1], i + 2
    else:
        raise EngineError(f"{name} needs a value")
    if opt.field == "storage_options":
        own[opt.field] = (*own.get(opt.field, ()), value)  # type: ignore[misc]
    else:
        own[opt.field] = value
    return after


def _typed(own: dict[str, object]) -> dict[str, object]:
    if "expires" in own and not isinstance(own["expires"], int):
        try:
            own["expires"] = int(str(own["expires"]))
        except ValueError:
            raise EngineError(f"--expires {own['expires']!r}: expected seconds") from None
    return own


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


def _file_conf(spark_home: Path, submit: SubmitArgs, key: str) -> str | None:
    """*key* as spark-submit would read it from a file: the user's properties file, else
    spark-defaults.conf (where Spark reads it); None if neither sets it."""
    files: list[str | Path | None] = [submit.properties_file]
    if submit.properties_file is None or LOAD_DEFAULTS in submit.spark_args:
        files.append(defaults_file(spark_home))
    for path in files:
        value = properties.read(path).get(key) if path is not None else None
        if value:
            return value
    return None


def _default_master(spark_home: Path, submit: SubmitArgs) -> str:
    """What spark-submit uses without --master: the files' (see :func:`_file_conf`), else
    local[*]."""
    return (_file_conf(spark_home, submit, "spark.master")
            or os.environ.get("MASTER", "local[*]"))


def submit_command(
    env: EnvRef, submit: SubmitArgs, options: SubmitOptions, spark_submit: str | None = None
) -> SubmitCommand:
    """The spark-submit command running *submit* with its executors inside *env*; confs whose
    values carry signatures go through a private properties file (:mod:`.command`)."""
    program = spark_submit or find_spark_submit()
    spark_home = Path(program).resolve().parent.parent
    master = submit.master or _default_master(spark_home, submit)
    confs = conf(
        env, options.mode, master=master, deploy_mode=submit.deploy_mode,
        cache_dir=options.cache_dir, presign=options.presign, expires=options.expires,
        spark_home=spark_home,
        requested=[*submit.lists.values(), *submit.confs.values(), *submit.spark_args],
    )
    if submit.deploy_mode == "client" and "spark.pyspark.driver.python" not in submit.confs:
        # The driver runs here, in the local env; without this it would use the executors'.
        confs["spark.pyspark.driver.python"] = options.driver_python or sys.executable
    if options.local_modules:
        modules = ",".join(local_modules(submit.app))
        confs["spark.submit.pyFiles"] = merge_list(confs.get("spark.submit.pyFiles"), modules)
    for key in LIST_KEYS:  # the user's first, envship's after; a file's too: --conf beats it
        theirs = submit.lists.get(key) or (
            _file_conf(spark_home, submit, key) if confs.get(key) else None)
        if theirs:
            confs[key] = merge_list(theirs, confs.get(key))
    confs = {k: v for k, v in confs.items() if v}
    cmd = [program]
    if not submit.master:
        cmd += ["--master", master]
    return split_signed(
        cmd, confs, submit.spark_args, [submit.app, *submit.app_args], spark_home=spark_home,
        properties_file=submit.properties_file,
    )


_MASTER = re.compile(
    r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]"
    r"|spark://[^\s,/]+:\d+(,[^\s,/]+:\d+)*|yarn|k8s://\S+|mesos://\S+"
)


def _check_master_and_app(submit: SubmitArgs) -> None:
    """What spark-submit would refuse with a Java stack trace, refused here in one line (in a
    dry run too): a master URL of no known form, a local application file that is not there."""
    if submit.master is not None and not _MASTER.fullmatch(submit.master):
        raise EngineError(
            f"--master {submit.master!r} is not a Spark master URL: use local[N], "
            "spark://HOST:PORT, yarn or k8s://https://HOST:PORT"
        )
    if "://" not in submit.app and not os.path.exists(submit.app):
        raise EngineError(f"application {submit.app} not found (from {os.getcwd()}): give the "
                          "path of the job's .py file")


def plan_submit(argv: Sequence[str]) -> tuple[SubmitCommand, SubmitOptions]:
    """The spark-submit argv for ``envship spark-submit ARGV...`` (see :func:`split_command`):
    open the env (or take the PEX as it is), check that the application's local code matches
    the env's code layer (with ``--dry-run`` too: a dry run shows what a real run would do, or
    refuses as it would), and add the env's confs. Returns the command (run it with
    :func:`run_command`) and the options in force."""
    from ...drift import require_code_match
    from ...store import parse_storage_options
    from .pex import wants_pex

    env_ref, submit, options = split_command(list(argv))
    _check_master_and_app(submit)
    env: EnvRef
    if wants_pex(env_ref, options.mode):
        env = env_ref  # a PEX: no manifest, no code layer to compare
    else:
        storage = parse_storage_options(list(options.storage_options)) or None
        env = Env.coerce(env_ref, storage)
        if options.check:
            require_code_match(env, [str(Path(submit.app).resolve().parent)])
    return submit_command(env, submit, options), options
