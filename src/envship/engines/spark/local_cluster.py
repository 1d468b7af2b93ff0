"""A throw-away Spark standalone cluster (one master, one worker) on 127.0.0.1: demos, tests."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ...errors import EngineError
from ..processes import free_port, signal_group

__all__ = ["StandaloneCluster", "find_spark_home", "free_port"]

log = logging.getLogger(__name__)

_MASTER = "org.apache.spark.deploy.master.Master"
_WORKER = "org.apache.spark.deploy.worker.Worker"


def find_spark_home() -> Path:
    """``$SPARK_HOME`` if set, else the directory of the installed ``pyspark`` package."""
    env_home = os.environ.get("SPARK_HOME")
    if env_home:
        return Path(env_home)
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            "Spark not found: install pyspark (`pip install pyspark`) or set SPARK_HOME "
            "to a Spark distribution."
        )
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class StandaloneCluster:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`; kills every JVM it started.

    ``path_prepend`` goes first on the worker's ``PATH``: executors find ``python3`` there unless
    the application sets its own executor Python.
    """

    work_dir: Path
    cores: int = 2
    memory: str = "2g"
    host: str = "127.0.0.1"
    spark_home: Path | None = None
    path_prepend: Sequence[Path] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    master_url: str = ""
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> StandaloneCluster:
        home = self.spark_home or find_spark_home()
        spark_class = home / "bin" / "spark-class"
        if not spark_class.exists():
            raise EngineError(f"{spark_class} not found: SPARK_HOME={home} is not a Spark home.")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = self._env(home)
        port = free_port(self.host)
        self.master_url = f"spark://{self.host}:{port}"
        try:
            self._launch(
                "master",
                [str(spark_class), _MASTER, "--host", self.host, "--port", str(port),
                 "--webui-port", str(free_port(self.host))],
                env,
            )
            worker_dir = self.work_dir / "worker"
            worker_dir.mkdir(exist_ok=True)
            self._launch(
                "worker",
                [str(spark_class), _WORKER, self.master_url, "--host", self.host,
                 "--port", str(free_port(self.host)), "--webui-port", str(free_port(self.host)),
                 "--cores", str(self.cores), "--memory", self.memory,
                 "--work-dir", str(worker_dir)],
                env,
            )
            self._wait_registered()
        except BaseException:
            self.stop()
            raise
        log.info("spark standalone cluster up at %s", self.master_url)
        return self

    def stop(self) -> None:
        """Terminate the worker (and its executors) and the master; SIGKILL what lingers."""
        procs, self._procs = self._procs, []
        for proc in reversed(procs):
            signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in reversed(procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Executors and python daemons share the worker's process group: kill stragglers too.
            signal_group(proc, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- details ------------------------------------------------------------------
    def log_path(self, role: str) -> Path:
        return self.work_dir / f"{role}.log"

    def _env(self, home: Path) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "VIRTUAL_ENV"):
            env.pop(var, None)
        path = [str(p) for p in self.path_prepend] + [env.get("PATH", "/usr/bin:/bin")]
        env.update(
            SPARK_HOME=str(home),
            SPARK_LOCAL_IP=self.host,
            SPARK_DAEMON_MEMORY="256m",
            SPARK_NO_DAEMONIZE="1",
            PATH=os.pathsep.join(path),
        )
        env.update(self.extra_env)
        return env

    def _launch(self, role: str, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.log_path(role), "wb") as out:
            # spark-class execs java, so the PID is the JVM's; its own session groups its children.
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.work_dir, start_new_session=True,
            )
        self._procs.append(proc)

    def _wait_registered(self) -> None:
        deadline = time.monotonic() + self.timeout
        worker_log = self.log_path("worker")
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise EngineError(
                        f"a Spark daemon exited with code {proc.returncode}; see the logs in "
                        f"{self.work_dir} (is Java 17 installed and on PATH?)"
                    )
            if worker_log.exists() and "Successfully registered with master" in (
                worker_log.read_text(errors="replace")
            ):
                return
            time.sleep(0.5)
        raise EngineError(
            f"the Spark worker did not register with {self.master_url} within "
            f"{self.timeout:.0f}s; see {worker_log}"
        )

