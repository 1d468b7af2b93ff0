"""Force an order on the named steps of concurrent store operations (publish, gc, tag)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Step = Callable[[str], None]


class Schedule:
    """`Schedule(["gc:looked-again", "pub:begin", "gc:deleted"])`: an actor that reaches a step
    named in the list waits until every entry before it has happened; other steps pass."""

    def __init__(self, order: list[str], timeout: float = 30.0) -> None:
        self.order = order
        self.done = 0
        self.timeout = timeout
        self.seen: list[str] = []
        self.cond = threading.Condition()

    def hook(self, actor: str) -> Step:
        def step(name: str) -> None:
            key = f"{actor}:{name}"
            with self.cond:
                self.seen.append(key)
                if key not in self.order[self.done:]:
                    return
                idx = self.order.index(key, self.done)
                if not self.cond.wait_for(lambda: self.done == idx, self.timeout):
                    raise AssertionError(
                        f"{key} waited in vain for {self.order[self.done]}; seen: {self.seen}")
                self.done += 1
                self.cond.notify_all()

        return step

    def run(self, **actors: Callable[[Step], Any]) -> dict[str, Any]:
        """Run each actor (given its step hook) in a thread; results or raised exceptions."""
        results: dict[str, Any] = {}

        def go(name: str, fn: Callable[[Step], Any]) -> None:
            try:
                results[name] = fn(self.hook(name))
            except BaseException as exc:  # reported to the test
                results[name] = exc

        threads = [threading.Thread(target=go, args=(n, f), daemon=True)
                   for n, f in actors.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.timeout * 2)
            assert not t.is_alive(), f"an actor hung; seen: {self.seen}"
        assert self.done == len(self.order), (self.order[self.done:], self.seen)
        return results
