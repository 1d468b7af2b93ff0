"""Talking to YARN through skein: submit a spec, wait for the application, fetch its logs."""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import EngineError

if TYPE_CHECKING:
    import skein

__all__ = ["submit", "wait_for_finished", "get_application_logs"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_APP_ID = re.compile(r"application_\d+_\d+")
_HINT = (
    "check that HADOOP_CONF_DIR points at the cluster, the `yarn` command is on PATH, and you "
    "hold a Kerberos ticket (kinit) if the cluster needs one"
)


def _skein(what: str) -> Any:
    try:
        import skein
    except ImportError as exc:
        raise EngineError(f"envship.yarn.{what} needs skein: pip install 'envship[yarn]'") from exc
    return skein


@contextmanager
def _client(what: str, client: skein.Client | None) -> Iterator[skein.Client]:
    """The caller's client, or a new one (skein starts its Java driver) closed afterwards."""
    if client is not None:
        yield client
        return
    skein = _skein(what)
    if shutil.which("yarn") is None:  # skein's driver starts from `yarn classpath`
        raise EngineError(
            f"envship.yarn.{what}: cannot start skein's YARN client (no `yarn` command on "
            f"PATH); {_HINT}"
        )
    try:
        own = skein.Client()
    except FileNotFoundError as exc:  # skein runs `yarn classpath` to start its driver
        raise EngineError(
            f"envship.yarn.{what}: cannot start skein's YARN client ({exc.filename or exc} not "
            f"found); {_HINT}"
        ) from None
    except Exception as exc:  # skein's own, grpc and Java errors alike
        raise EngineError(
            f"envship.yarn.{what}: cannot reach YARN ({type(exc).__name__}: {exc}); {_HINT}"
        ) from None
    with own:
        yield own


def _check_app_id(app_id: str) -> str:
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        raise EngineError(
            f"{app_id!r} is not a YARN application id (application_<cluster ts>_<n>, as "
            "submit() returns)"
        )
    return app_id


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"envship.yarn.{what}: {type(exc).__name__}: {exc}; {_HINT}") from None


def submit(spec: skein.ApplicationSpec, *, client: skein.Client | None = None) -> str:
    """Submit *spec* to YARN (a running cluster and skein's driver are needed); return app id."""
    try:
        with _client("submit", client) as cl:
            return str(cl.submit(spec))
    except EngineError:
        raise
    except Exception as exc:  # skein raises its own, grpc and Java errors alike
        raise EngineError(
            f"YARN rejected or could not receive the application ({type(exc).__name__}: {exc}); "
            + _HINT
        ) from exc


def wait_for_finished(
    app_id: str,
    *,
    client: skein.Client | None = None,
    poll_every: float = 5.0,
    timeout: float | None = None,
) -> bool:
    """Poll the application until YARN gives it a final status; True if it SUCCEEDED.

    As cluster-pack's ``skein_launcher.wait_for_finished``; *timeout* (seconds) raises
    ``EngineError`` instead of waiting for ever.
    """
    _check_app_id(app_id)
    if poll_every <= 0:
        raise EngineError(f"poll_every={poll_every}: use a positive number of seconds")
    if timeout is not None and timeout < 0:
        raise EngineError(f"timeout={timeout}: use a positive number of seconds, or None")
    deadline = None if timeout is None else time.monotonic() + timeout
    with _client("wait_for_finished", client) as cl:
        state = None
        while True:
            report = _call("wait_for_finished", lambda: cl.application_report(app_id))
            if report.state != state:
                state = report.state
                log.info("%s: %s (%s)", app_id, state, report.tracking_url or "")
            final = str(report.final_status).upper().rpartition(".")[2]
            if final != "UNDEFINED":
                log.info("%s finished: %s", app_id, final)
                return final == "SUCCEEDED"
            if deadline is not None and time.monotonic() >= deadline:
                raise EngineError(f"{app_id} still {state} after {timeout:g}s")
            time.sleep(poll_every)


def get_application_logs(
    app_id: str,
    *,
    client: skein.Client | None = None,
    user: str = "",
    wait_for_nb_logs: int | None = None,
    tries: int = 15,
    retry_every: float = 3.0,
) -> skein.model.ApplicationLogs:
    """The aggregated logs of a finished application (``{container: text}``).

    As cluster-pack's ``get_application_logs``: YARN aggregates logs after the application
    ends, so this retries until *wait_for_nb_logs* containers' logs are there (or any, if
    None), *tries* times; with fewer it returns what it has, with none it raises.
    """
    _check_app_id(app_id)
    if tries < 1:
        raise EngineError(f"tries={tries}: use 1 or more")
    if wait_for_nb_logs is not None and wait_for_nb_logs < 1:
        raise EngineError(f"wait_for_nb_logs={wait_for_nb_logs}: use 1 or more, or None")
    logs: Any = None
    last = ""
    with _client("get_application_logs", client) as cl:
        for attempt in range(tries):
            try:
                logs = cl.application_logs(app_id, user=user)
            except Exception as exc:  # not aggregated yet, or YARN errors
                last = f"{type(exc).__name__}: {exc}"
                log.info("logs of %s not available (attempt %d/%d): %s", app_id, attempt + 1,
                         tries, last)
            else:
                if wait_for_nb_logs is None or len(logs) >= wait_for_nb_logs:
                    return logs
            if attempt + 1 < tries:
                time.sleep(retry_every)
    if logs is not None and len(logs):
        log.warning("%s: %d container log(s) of %s", app_id, len(logs), wait_for_nb_logs)
        return logs
    raise EngineError(f"no logs of {app_id} after {tries} tries ({last or 'none aggregated'})")
