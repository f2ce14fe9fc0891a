"""The fault matrix's rows the suite runs (benchmarks/faults/rows, IN_SUITE): every invariant holds.

Each case runs one row of ``python -m benchmarks.faults --fast`` with the
test sizes: real ``python -m hpo`` processes, a real fault, then the checks
a-g of benchmarks/faults/invariants.py. PostgreSQL rows start a private
cluster (benchmarks/faults/cluster.py) that they may restart and kill; they
never touch the shared test server. The PostgreSQL restart (``pg-restart``)
and SIGTERM ending one worker while the other finishes the budget
(``sigterm``, which also checks that the worker ends within seconds, its
trial FAIL and its run KILLED) are tested here only, as rows.

A row that fails today, because of a defect listed in issue 11 or one the
matrix found, is a strict xfail naming it: the suite stays green, and turns
red when the fix lands, so that the mark is removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

from benchmarks.faults.cluster import unavailable
from benchmarks.faults.rows import FAST, IN_SUITE, POSTGRES

pytestmark = pytest.mark.slow

# row -> why it fails today (a strict xfail: the mark goes when the fix lands)
FAILING_TODAY: dict[str, str] = {}


def cases() -> list[ParameterSet]:
    found = []
    for name in IN_SUITE:
        marks = [pytest.mark.postgres] if name in POSTGRES else []
        if name in FAILING_TODAY:
            marks.append(pytest.mark.xfail(reason=FAILING_TODAY[name], strict=True))
        found.append(pytest.param(name, marks=marks, id=name))
    return found


def need_a_private_cluster() -> None:
    """Skip without PostgreSQL's server binaries, unless CI requires PostgreSQL."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("HPO_REQUIRE_POSTGRES") == "1":
        raise AssertionError(f"cannot start a private PostgreSQL cluster: {reason}")
    pytest.skip(f"cannot start a private PostgreSQL cluster: {reason}")


@pytest.mark.parametrize("name", cases())
def test_every_invariant_holds_through_the_fault(name: str, tmp_path: Path) -> None:
    if name in POSTGRES:
        need_a_private_cluster()
    row = FAST[name](tmp_path)
    broken = {key: v.reason for key, v in row.invariants.items() if v.held is False}
    assert not broken, f"{name} ({row.injected}): {broken}"
