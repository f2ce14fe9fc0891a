"""Fixtures of the nightly tests: four simulated nights of one study, and a PostgreSQL database.

Real Optuna journal storage, real MLflow SQLite store and model registry. The
nights run once for the whole folder (package scope): test_night.py,
test_warm_start.py, test_champion.py and test_history.py each read what they left.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from hpo.errors import StudyStopped
from hpo.schedule import run_scheduled
from tests.hpo.pg import new_database
from tests.hpo.schedule.helpers import NIGHTS, Collect, Nights, compose_cfg, write_data


@pytest.fixture(scope="package")
def nights(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Nights:
    """Four nights of one study, and a rerun of the first.

    1: x fixed at 0.5, the first champion. Rerun the same night: nothing new.
    2: x in [0, 0.5], warm-started with night 1's x = 0.5: better, promoted.
    3: the data changed; x in [0.7, 1]: night 2's x do not fit; worse, kept.
    4: every trial fails: a failed night, the champion stays.
    """
    folder = tmp_path_factory.mktemp("nights")
    found = Nights(f"nightly_{uuid.uuid4().hex[:8]}", str(folder / "optuna.journal"), mlflow_uri)
    write_data(folder / "data.csv")
    handler = Collect(found.warnings)
    logging.getLogger("hpo").addHandler(handler)
    try:
        n1, n2, n3, n4 = NIGHTS
        common = ("study.n_trials=2", "schedule.warm_start=2")
        found.summaries[n1] = run_scheduled(
            compose_cfg(found, n1, *common, "study.space.x.low=0.5", "study.space.x.high=0.5")
        )
        versions = found.client.search_model_versions(f"name='{found.base}'")
        found.versions_before_rerun = len(versions)
        found.trials_before_rerun = [t.params for t in found.study(n1).trials]
        run_scheduled(
            compose_cfg(found, n1, *common, "study.space.x.low=0.5", "study.space.x.high=0.5")
        )
        found.summaries[n2] = run_scheduled(
            compose_cfg(found, n2, "study.n_trials=3", "study.space.x.high=0.5")
        )
        write_data(folder / "data.csv", drop=60)
        found.summaries[n3] = run_scheduled(
            compose_cfg(found, n3, *common, "study.space.x.low=0.7")
        )
        try:
            run_scheduled(
                compose_cfg(
                    found,
                    n4,
                    *common,
                    "+study.objective.fail_above=-1.0",
                    "study.max_failures=2",
                )
            )
        except StudyStopped as err:  # its trials kept failing
            found.failure = err
    finally:
        logging.getLogger("hpo").removeHandler(handler)
    return found


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    with new_database() as url:
        yield url
