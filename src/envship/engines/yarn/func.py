"""Functions run in YARN containers: pickled here (local modules by value), run inside the env."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...paths import envship_home
from ...remote import RUNNER, build_payload
from ..exec import EnvRef
from ..hadoop import HADOOP_SCHEMES, hadoop_url
from .client import submit
from .spec import application_spec, open_env

if TYPE_CHECKING:
    import skein

__all__ = ["function_spec", "submit_func", "CALL_NAME", "RUNNER_NAME", "RESULT_NAME"]

CALL_NAME = "envship-call.pickle"  # the pickled call, localized in each container
RUNNER_NAME = "envship_runner.py"  # envship.remote's runner, run by the env's interpreter
RESULT_NAME = "envship-result.pickle"  # what the call returned (or raised), in the container


def _write_call(data: bytes, directory: str | os.PathLike[str] | None) -> Path:
    """The payload as a file, content-addressed (an unchanged call is one file)."""
    base = Path(directory) if directory is not None else envship_home() / "yarn-calls"
    path = base / hashlib.sha256(data).hexdigest()[:24] / CALL_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{CALL_NAME}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def function_spec(
    env: EnvRef,
    func: Any,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    call_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> skein.ApplicationSpec:
    """A spec whose containers call ``func(*args, **kwargs)`` inside *env*.

    As cluster-pack's ``skein_config_builder.build_with_func``: the function is pickled with
    cloudpickle (modules imported from local files that are not in the env go by value) into
    a file resource, and envship's runner calls it with the env's interpreter. A raised
    exception fails the container (traceback in its log); the return value is pickled to
    ``envship-result.pickle`` in the container's directory. The client and the env must run
    the same Python major.minor. *options* are those of :func:`application_spec`; the call
    file is written under *call_dir* (default ``$ENVSHIP_HOME/yarn-calls``), where skein
    uploads it from.
    """
    opened = open_env(env, options.get("storage_options"))
    payload = build_payload(opened.manifest, func, (tuple(args), dict(kwargs or {})), "call")
    call = _write_call(payload.data, call_dir)
    schemes = options.get("schemes")
    scheme_map = HADOOP_SCHEMES if schemes is None else dict(schemes)
    extra = {
        CALL_NAME: (hadoop_url(str(call), scheme_map, local_as_file=True), "file"),
        RUNNER_NAME: (hadoop_url(str(RUNNER), scheme_map, local_as_file=True), "file"),
    }
    command = f"python {RUNNER_NAME} {RESULT_NAME} --exit-status < {CALL_NAME}"
    return application_spec(opened, command, extra_files=extra, **options)


def submit_func(
    env: EnvRef,
    func: Any,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    client: skein.Client | None = None,
    **options: Any,
) -> str:
    """Submit ``func(*args, **kwargs)`` to YARN, run inside *env*; return the application id
    (as cluster-pack's ``skein_launcher.submit_func``; then :func:`wait_for_finished`)."""
    return submit(function_spec(env, func, args, kwargs, **options), client=client)
