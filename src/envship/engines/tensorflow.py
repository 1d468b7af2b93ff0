"""TensorFlow multi-worker jobs: the ``TF_CONFIG`` each worker process starts with.

``tf.distribute.MultiWorkerMirroredStrategy`` learns the cluster from the ``TF_CONFIG``
environment variable of every worker: the same list of ``host:port`` addresses everywhere, and
each worker's own index in it. A worker given a wrong list waits for peers that never come, so
:func:`tf_config` checks the list before any process starts. Start each worker with
:func:`envship.engines.exec.command` and put the result in its environment (for example with
:func:`envship.engines.exec.process_environ`). Standard library only; TensorFlow is not
imported here, only inside the env.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..errors import EngineError

__all__ = ["tf_config"]


def tf_config(workers: Sequence[str], index: int, *, port: int | None = None) -> str:
    """The ``TF_CONFIG`` value (compact JSON) of worker *index* in a cluster of *workers*.

    *workers* lists one ``host:port`` per worker process, in the same order on every node
    (``[v6addr]:port`` for IPv6). With *port*, an entry without a port gets that one, so
    ``tf_config(["node1", "node2"], 0, port=2222)`` is enough for one worker per host.
    Worker 0 is the chief (it saves checkpoints and summaries in TensorFlow's conventions).

    Raises :class:`~envship.errors.EngineError` for an empty list, a malformed or duplicate
    address, an address without a port (and no *port*), or an index outside the list.
    """
    if isinstance(workers, (str, bytes)) or not isinstance(workers, Sequence):
        raise EngineError(
            f"workers must be a list of 'host:port' strings, not {type(workers).__name__} "
            f"{workers!r}: split a comma-separated value first"
        )
    if not workers:
        raise EngineError("no TensorFlow workers: give at least one 'host:port'")
    if port is not None:
        _check_port(port, "port=")
    addresses = [_address(worker, port) for worker in workers]
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            raise EngineError(
                f"worker address {address} appears twice in {addresses}: every worker needs "
                "its own host:port"
            )
        seen.add(address)
    if isinstance(index, bool) or not isinstance(index, int):
        raise EngineError(f"worker index must be an int, not {index!r}")
    if not 0 <= index < len(addresses):
        raise EngineError(
            f"worker index {index} is outside the {len(addresses)} workers "
            f"(valid: 0..{len(addresses) - 1})"
        )
    config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    return json.dumps(config, separators=(",", ":"))


def _address(worker: object, default_port: int | None) -> str:
    """*worker* as ``host:port``, checked; *default_port* fills in a missing port."""
    if not isinstance(worker, str) or not worker.strip():
        raise EngineError(f"worker address {worker!r} is not a 'host:port' string")
    text = worker.strip()
    if text.startswith("["):  # [IPv6]:port or [IPv6]
        host_end = text.find("]")
        if host_end < 2:
            raise EngineError(f"worker address {worker!r}: write IPv6 hosts as [addr]:port")
        host, rest = text[: host_end + 1], text[host_end + 1 :]
        if rest and not rest.startswith(":"):
            raise EngineError(f"worker address {worker!r}: expected [addr]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise EngineError(f"worker address {worker!r}: write IPv6 hosts as [addr]:port")
    else:
        host, sep, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if sep else None
        if not host:
            raise EngineError(f"worker address {worker!r} has no host")
    if any(c.isspace() or c in "/,'\"" for c in host):
        raise EngineError(f"worker address {worker!r}: {host!r} is not a host name or address")
    if port_text is None:
        if default_port is None:
            raise EngineError(
                f"worker address {worker!r} has no port: write host:port, or pass port="
            )
        return f"{host}:{default_port}"
    if not port_text.isdigit():
        raise EngineError(f"worker address {worker!r}: port {port_text!r} is not a number")
    _check_port(int(port_text), f"worker address {worker!r}:")
    return f"{host}:{int(port_text)}"


def _check_port(port: object, what: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise EngineError(f"{what} port {port!r} is not a TCP port (1-65535)")
