"""The nightly lock (hpo/schedule/lock.py) on PostgreSQL: a second session is refused at once.

The file lock of local storages is tested in tests/hpo/storages/test_journal.py,
and two nights started together from the command line in test_night.py.
"""

from __future__ import annotations

import pytest

from hpo.schedule.lock import AlreadyRunning, night_lock


@pytest.mark.postgres
def test_the_postgres_lock_refuses_a_second_session_and_names_the_holder(
    pg_database: str,
) -> None:
    study = "lock_test"
    with night_lock(pg_database, study, "2024-06-01"):
        refused = pytest.raises(AlreadyRunning, match=r"already running \(hpo-nightly 2024-06-01 ")
        with refused, night_lock(pg_database, study, "2024-06-01"):
            pass
        with night_lock(pg_database, f"{study}_other", "2024-06-01"):
            pass  # another study's night is not blocked
    with night_lock(pg_database, study, "2024-06-02"):
        pass  # released when the first night ended
