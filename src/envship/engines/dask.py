"""Dask: start a distributed scheduler and workers inside an env and check that they are in it."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..drift import require_code_match
from ..env import Env
from ..errors import EngineError
from .exec import EnvRef, Launch, arg_list, launch, process_environ
from .processes import free_port, signal_group

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "worker_launch", "worker_command", "scheduler_launch", "scheduler_command", "cluster",
    "check", "cli_options",
]

log = logging.getLogger(__name__)

_WORKER_MODULE = "distributed.cli.dask_worker"
_SCHEDULER_MODULE = "distributed.cli.dask_scheduler"


def cli_options(opts: Mapping[str, object]) -> list[str]:
    """``{"nthreads": 2, "nanny": False, "resources": "GPU=1"}`` -> dask CLI flags.

    ``True`` gives ``--name``, ``False`` gives ``--no-name`` (dask's on/off switches), ``None``
    is left out, a list or tuple repeats the flag.
    """
    out: list[str] = []
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def worker_launch(
    env: EnvRef,
    scheduler_address: str,
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    **worker_opts: object,
) -> Launch:
    """A ``dask worker`` started inside *env*, connecting to *scheduler_address*: its argv
    and the variable naming the env (kept off the command line; see
    :func:`envship.engines.exec.launch`).

    *worker_opts* become ``dask worker`` options (``nthreads=2`` -> ``--nthreads 2``);
    *extra_args* are passed through as they are. See :func:`envship.engines.exec.command`
    for *node_script_path* and *python*.
    """
    if not scheduler_address:
        raise EngineError("no scheduler address: pass e.g. 'tcp://10.0.0.5:8786'")
    argv = ["python", "-m", _WORKER_MODULE, scheduler_address, *cli_options(worker_opts)]
    return launch(env, [*argv, *arg_list(extra_args, "extra_args")],
                  node_script_path=node_script_path, python=python)


def worker_command(
    env: EnvRef,
    scheduler_address: str,
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    **worker_opts: object,
) -> list[str]:
    """:func:`worker_launch` as one argv, the env reference on it (readable by every user of
    the node: prefer worker_launch)."""
    return worker_launch(env, scheduler_address, node_script_path=node_script_path,
                         python=python, extra_args=extra_args, **worker_opts).with_ref_in_argv()


def scheduler_launch(
    env: EnvRef,
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    **scheduler_opts: object,
) -> Launch:
    """A ``dask scheduler`` started inside *env* (options as in worker_launch)."""
    argv = ["python", "-m", _SCHEDULER_MODULE, *cli_options(scheduler_opts),
            *arg_list(extra_args, "extra_args")]
    return launch(env, argv, node_script_path=node_script_path, python=python)


def scheduler_command(
    env: EnvRef,
    *,
    node_script_path: str | None = None,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    **scheduler_opts: object,
) -> list[str]:
    """:func:`scheduler_launch` as one argv, the env reference on it."""
    return scheduler_launch(env, node_script_path=node_script_path, python=python,
                            extra_args=extra_args, **scheduler_opts).with_ref_in_argv()


@dataclass(frozen=True)
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def _start(name: str, how: Launch, environ: dict[str, str], workdir: Path) -> _Proc:
    log_path = workdir / f"{name}.log"
    log.info("starting %s: %s", name, how.shown())
    with open(log_path, "wb") as out:
        # A session of its own: stopping the cluster signals the whole process tree.
        popen = subprocess.Popen(
            how.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**environ, **how.env_vars},
            cwd=workdir,
            start_new_session=True,
        )
    return _Proc(name, popen, log_path)


def _stop(procs: Sequence[_Proc], grace: float = 10.0) -> None:
    for proc in procs:
        signal_group(proc.popen, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop after SIGTERM; killing it", proc.name)
        # Kill what is left of the group (a nanny's worker child, a stuck process).
        signal_group(proc.popen, signal.SIGKILL)
        proc.popen.wait()




def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _wait_scheduler(proc: _Proc, scheduler_file: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise EngineError(
                f"the Dask scheduler exited with code {proc.popen.returncode} before it was "
                f"ready; its output ends with:\n{proc.tail()}"
            )
        try:
            info = json.loads(scheduler_file.read_text())
            return str(info["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    raise EngineError(
        f"the Dask scheduler was not ready after {timeout:.0f}s (fetching a large env for the "
        f"first time may need a longer start_timeout); its output ends with:\n{proc.tail()}"
    )


@contextmanager
def cluster(
    env: EnvRef,
    n_workers: int = 2,
    *,
    threads_per_worker: int = 1,
    host: str = "127.0.0.1",
    cache_dir: str | os.PathLike[str] | None = None,
    node_script_path: str | None = None,
    python: str | None = None,
    worker_opts: Mapping[str, object] | None = None,
    start_timeout: float = 300.0,
    check_env: bool = True,
    environ: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Client]:
    """Start a scheduler and *n_workers* worker processes inside *env* on this machine.

    Yields a connected ``distributed.Client`` (this process needs ``distributed``, not the
    env's packages). Every process starts through the node runtime, so the env is fetched and
    assembled once into the node cache (*cache_dir*, else ``$ENVSHIP_CACHE``). On exit the
    client is closed and every process started here is stopped. With *check_env*, the local
    code is first compared with the env's code layers (edited but not re-shipped: EngineError)
    and the workers are checked once up (:func:`check`). *storage_options*: to read
    the env here for the check (the node runtime reads its store with fsspec's own
    configuration, e.g. ``FSSPEC_S3_ENDPOINT_URL`` in *environ*).
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise EngineError(
            "envship.dask.cluster needs `distributed` in this Python: pip install 'envship[dask]'"
        ) from exc
    if n_workers < 1:
        raise EngineError(f"n_workers must be at least 1, got {n_workers}")
    if check_env:  # functions pickled here by reference must find the same code there
        env = Env.coerce(env, storage_options)
        require_code_match(env)
    proc_env = process_environ(cache_dir, environ)
    procs: list[_Proc] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="envship-dask-")))
        stack.callback(_stop, procs)
        scheduler_file = workdir / "scheduler.json"
        # A port chosen here lets the workers start with the scheduler, not after it: both
        # wait on the same node-cache lock for the env, and workers retry until it listens.
        port = free_port(host)
        address = f"tcp://{_url_host(host)}:{port}"
        sched = _start(
            "scheduler",
            scheduler_launch(
                env,
                node_script_path=node_script_path,
                python=python,
                host=host,
                port=port,
                dashboard=False,
                scheduler_file=str(scheduler_file),
            ),
            proc_env,
            workdir,
        )
        procs.append(sched)
        opts: dict[str, Any] = {
            "nthreads": threads_per_worker,
            "host": host,
            "dashboard": False,
            **(worker_opts or {}),
        }
        for i in range(n_workers):
            wdir = workdir / f"worker-{i}"
            wdir.mkdir()
            how = worker_launch(
                env,
                address,
                node_script_path=node_script_path,
                python=python,
                name=f"envship-worker-{i}",
                local_directory=str(wdir),
                **opts,
            )
            procs.append(_start(f"worker-{i}", how, proc_env, workdir))
        address = _wait_scheduler(sched, scheduler_file, start_timeout)
        log.info("Dask scheduler at %s", address)
        client = Client(address, timeout=f"{start_timeout}s")  # type: ignore[no-untyped-call]
        stack.callback(client.close)
        _wait_workers(client, procs, n_workers, start_timeout)
        if check_env:
            check(client, env, storage_options=storage_options)
        yield client


def _wait_workers(client: Client, procs: Sequence[_Proc], n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(client.scheduler_info(n_workers=-1).get("workers", {})) < n:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise EngineError(
                    f"Dask {proc.name} exited with code {proc.popen.returncode} while starting; "
                    f"its output ends with:\n{proc.tail()}"
                )
        if time.monotonic() > deadline:
            raise EngineError(
                f"fewer than {n} Dask workers connected within {timeout:.0f}s; the last "
                f"worker's output ends with:\n{procs[-1].tail()}"
            )
        time.sleep(0.2)


def check(
    client: Client, env: EnvRef, *, storage_options: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Check that every worker of *client* runs inside *env*; return ``{worker: env id}``.

    Each worker reports ``ENVSHIP_ENV_ID``, which the node runtime sets. Raises EngineError
    naming the workers that run another env or none, or whose Python (major.minor) or
    ``distributed`` version differs from this client's.
    """
    expected = Env.coerce(env, storage_options).env_id
    # os.getenv pickles by reference and runs on the worker: the worker's own environment.
    reported: dict[str, str | None] = client.run(os.getenv, "ENVSHIP_ENV_ID")
    if not reported:
        raise EngineError("no Dask worker is connected to the scheduler: nothing to check")
    wrong = {addr: got for addr, got in sorted(reported.items()) if got != expected}
    if wrong:
        detail = ", ".join(
            f"{addr} ({'env ' + got[:12] if got else 'not started by envship'})"
            for addr, got in wrong.items()
        )
        raise EngineError(
            f"{len(wrong)} of {len(reported)} Dask workers do not run inside env "
            f"{expected[:12]}: {detail}; start them with `envship dask-worker ENV_URI SCHEDULER`"
        )
    _check_versions(client)
    return {addr: str(got) for addr, got in reported.items()}


def _check_versions(client: Client) -> None:
    """Functions pickled here must unpickle there: same Python minor and distributed version."""
    import platform
    from importlib.metadata import version

    here = (".".join(platform.python_version_tuple()[:2]), version("distributed"))
    pythons: dict[str, str] = client.run(platform.python_version)
    dists: dict[str, str] = client.run(version, "distributed")
    for addr in sorted(pythons):
        there = (".".join(pythons[addr].split(".")[:2]), dists.get(addr, "?"))
        if there != here:
            raise EngineError(
                f"Dask worker {addr} runs Python {there[0]} with distributed {there[1]}, this "
                f"client Python {here[0]} with distributed {here[1]}: pack the env with the "
                "same Python and distributed version as the client"
            )
