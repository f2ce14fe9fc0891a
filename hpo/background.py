"""One small thing several places need: call a function every few seconds while a block runs.

Heartbeats, the watchdog and the Redis lock's renewal all do this; one version
means one place where the thread is stopped and joined on the way out.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def every(
    interval: float | None, call: Callable[[], bool | None], name: str, first: bool = False
) -> Iterator[None]:
    """Run ``call`` every ``interval`` seconds in a thread while the block runs (``first``: at
    once too) until it returns False; no thread when ``interval`` is None. ``call`` handles
    its own errors."""
    if not interval:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        if first and call() is False:
            return
        while not stop.wait(interval):
            if call() is False:
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
