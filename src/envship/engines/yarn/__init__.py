"""YARN through skein: a spec that localizes the layers as archives and runs a command or a
pickled function inside the env; submit, wait for and read the logs of applications."""

from __future__ import annotations

from .client import get_application_logs, submit, wait_for_finished
from .func import CALL_NAME, RESULT_NAME, RUNNER_NAME, function_spec, submit_func
from .spec import (
    MANIFEST_NAME,
    YarnResources,
    application_spec,
    bootstrap_script,
    node_script_file,
    open_env,
    yarn_resources,
)

__all__ = [
    "YarnResources",
    "yarn_resources",
    "bootstrap_script",
    "application_spec",
    "function_spec",
    "submit",
    "submit_func",
    "wait_for_finished",
    "get_application_logs",
    "node_script_file",
    "open_env",
    "MANIFEST_NAME",
    "CALL_NAME",
    "RUNNER_NAME",
    "RESULT_NAME",
]
