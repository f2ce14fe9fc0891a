"""Invariant (a) while a row runs: no trial RUNNING long past its last sign of life.

A trial whose worker died must be failed within the grace period (plus the
watchdog's round), or it holds a slot of the budget and stalls the study;
looking only at the end would miss one that was failed at last, minutes
late (issue 11, defect 4: unowned trials left RUNNING for 120 s). On
PostgreSQL the watch reads Optuna's tables directly, once a second: a trial's
last sign of life is its latest heartbeat, or its start before the first.
It reads through its own connection and shrugs off errors: the row may be
restarting the server or ending every session.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg

QUERY = """
SELECT t.number,
       EXTRACT(EPOCH FROM (timezone('UTC', now()) - GREATEST(h.heartbeat, t.datetime_start)))
FROM trials t
JOIN studies s ON s.study_id = t.study_id
LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id
WHERE s.study_name = %s AND t.state = 'RUNNING'
"""
PERIOD = 1.0  # seconds between looks


class Watch:
    """Polls a study's RUNNING trials; ``overdue`` names each seen silent past ``limit`` s."""

    def __init__(self, url: str, study: str, limit: float) -> None:
        self.url = url
        self.study = study
        self.limit = limit
        self.worst: dict[int, float] = {}  # trial number -> longest silence seen past the limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults-watch", daemon=True)

    @property
    def overdue(self) -> list[str]:
        return [
            f"trial {n} RUNNING {age:.0f} s after its last heartbeat (limit {self.limit:g} s)"
            for n, age in sorted(self.worst.items())
        ]

    def _run(self) -> None:
        while not self._stop.wait(PERIOD):
            with contextlib.suppress(psycopg.Error):
                self._look()

    def _look(self) -> None:
        with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as connection:
            for number, age in connection.execute(QUERY, (self.study,)).fetchall():
                if age is not None and float(age) > self.limit:
                    self.worst[number] = max(float(age), self.worst.get(number, 0.0))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def watching(url: str, study: str, limit: float) -> Iterator[Watch]:
    watch = Watch(url, study, limit)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
