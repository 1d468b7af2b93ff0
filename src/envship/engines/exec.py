"""The `exec` engine: any command inside an env (YARN containers, Kubernetes pods, Slurm, MPI,
torch.distributed and TensorFlow workers all start processes with a command line)."""

from __future__ import annotations

from .launch import (
    NODE_SCRIPT_NAME,
    EnvLike,
    EnvRef,
    command,
    env_uri,
    process_environ,
    resolve_env_id,
)

__all__ = [
    "EnvLike",
    "EnvRef",
    "NODE_SCRIPT_NAME",
    "command",
    "env_uri",
    "resolve_env_id",
    "process_environ",
]
