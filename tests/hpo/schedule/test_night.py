"""The night end to end (hpo/schedule/night.py): dated studies, reruns, failures, the data.

Simulated over several nights with schedule.date (the ``nights`` fixture, see
conftest.py), on PostgreSQL too, and from the command line in two processes.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.names import PARENT_ATTR
from hpo.schedule import run_scheduled
from hpo.schedule.night import night_seed
from hpo.storages import open_storage
from tests.hpo.helpers import write_prior_study
from tests.hpo.schedule.helpers import NIGHTS, REPO, REPORT, Nights, compose_cfg, write_data

pytestmark = pytest.mark.slow


def test_each_night_is_its_own_dated_study_and_experiment(nights: Nights) -> None:
    names = optuna.get_all_study_names(open_storage(compose_cfg(nights, NIGHTS[0]).storage))
    assert sorted(names) == [f"{nights.base}-{night}" for night in NIGHTS]
    for night in NIGHTS[:3]:
        assert nights.summaries[night].study_name == f"{nights.base}-{night}"
        parent = nights.parent(night)
        experiment = nights.client.get_experiment(parent.info.experiment_id)
        assert experiment.name == f"{nights.base}-{night}"
        assert parent.info.status == "FINISHED"
    assert set(nights.ledger()) == set(NIGHTS)


def test_rerunning_a_night_resumes_it_without_duplicates(nights: Nights) -> None:
    study = nights.study(NIGHTS[0])
    assert [t.params for t in study.trials] == nights.trials_before_rerun
    assert len(study.trials) == 2
    versions = nights.client.search_model_versions(f"name='{nights.base}'")
    # nights 1, 2 and 3 registered one version each; the rerun of night 1 none
    assert nights.versions_before_rerun == 1
    assert len(versions) == 3
    night = nights.ledger()[NIGHTS[0]]
    assert night.data.tags["hpo.nightly.attempts"] == "2"
    assert night.info.status == "FINISHED"


def test_a_failed_night_leaves_the_champion_untouched(nights: Nights) -> None:
    assert nights.failure is not None and "trials in a row failed" in str(nights.failure)
    champion = nights.champion()
    assert str(champion.version) == "2"
    assert champion.run_id == nights.parent(NIGHTS[1]).info.run_id
    night = nights.ledger()[NIGHTS[3]]
    assert night.info.status == "FAILED"
    assert "trials in a row failed" in night.data.tags["hpo.nightly.error"]
    study = nights.study(NIGHTS[3])
    assert {t.state for t in study.trials} == {TrialState.FAIL}
    parent = nights.parent(NIGHTS[3]).data.tags
    assert "hpo.champion.decision" not in parent and "hpo.data_fingerprint" in parent
    versions = nights.client.search_model_versions(f"name='{nights.base}'")
    assert len(versions) == 3, "nothing registered"


def test_the_data_fingerprint_is_logged_and_its_change_noted(nights: Nights) -> None:
    prints = [nights.parent(night).data.tags["hpo.data_fingerprint"] for night in NIGHTS[:3]]
    assert prints[0] == prints[1] != prints[2]
    assert "hpo.data_changed" not in nights.parent(NIGHTS[1]).data.tags
    note = nights.parent(NIGHTS[2]).data.tags["hpo.data_changed"]
    assert note == f"data changed since night {NIGHTS[1]} (fingerprint {prints[1]} -> {prints[2]})"
    assert nights.summaries[NIGHTS[2]].where["data"] == note
    page = mlflow.artifacts.load_text(f"runs:/{nights.ledger()[NIGHTS[2]].info.run_id}/{REPORT}")
    assert note in html.unescape(page)


def test_each_night_draws_new_points_and_a_rerun_the_same(tmp_path: Path, mlflow_uri: str) -> None:
    """A fixed seed would redraw last night's random start-up trials exactly."""
    nights = Nights(f"seeded_{uuid.uuid4().hex[:8]}", str(tmp_path / "optuna.journal"), mlflow_uri)
    write_data(tmp_path / "data.csv")
    one = ("study.n_trials=2", "schedule.warm_start=0")
    for night in NIGHTS[:2]:
        run_scheduled(compose_cfg(nights, night, *one))
    first, second = ([t.params["x"] for t in nights.study(night).trials] for night in NIGHTS[:2])
    assert not set(first) & set(second), "tonight's points are not last night's"
    seeds = [nights.parent(night).data.tags["hpo.nightly.sampler_seed"] for night in NIGHTS[:2]]
    assert seeds[0] != seeds[1] and seeds[0] == str(night_seed(0, NIGHTS[0]))
    run_scheduled(compose_cfg(nights, NIGHTS[0], "study.n_trials=3", "schedule.warm_start=0"))
    again = [t.params["x"] for t in nights.study(NIGHTS[0]).trials]
    assert again[:2] == first, "a rerun of the same night resumes its own draws"


def test_several_workers_is_a_user_error(make_cfg) -> None:
    with pytest.raises(UserError, match="schedule=nightly runs in one process"):
        run_scheduled(make_cfg("schedule=nightly", "workers=2"))


@pytest.mark.postgres
def test_nights_on_postgres_storage_warm_start_and_promote(
    pg_database: str, tmp_path: Path, mlflow_uri: str
) -> None:
    found = Nights(f"pg_{uuid.uuid4().hex[:8]}", str(tmp_path / "unused.journal"), mlflow_uri)
    write_data(tmp_path / "data.csv")
    on_pg = (f"storage.url={pg_database}", "study.n_trials=2")
    fixed = ("study.space.x.low=0.5", "study.space.x.high=0.5")
    run_scheduled(compose_cfg(found, "2024-06-01", *on_pg, *fixed))
    run_scheduled(compose_cfg(found, "2024-06-02", *on_pg, "study.space.x.high=0.5"))

    storage = pg_database.replace("postgresql://", "postgresql+psycopg://", 1)
    first = optuna.load_study(study_name=f"{found.base}-2024-06-01", storage=storage)
    second = optuna.load_study(study_name=f"{found.base}-2024-06-02", storage=storage)
    assert second.trials[0].params == first.best_params
    decisions = [
        found.client.get_run(s.user_attrs[PARENT_ATTR]).data.tags["hpo.champion.decision"]
        for s in (first, second)
    ]
    assert decisions == ["first", "promoted"]
    assert found.champion().run_id == second.user_attrs[PARENT_ATTR]


# --- the command line, two processes -----------------------------------------------------------


def hpo(tmp_path: Path, night: str, tracking: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo",
            "study=tiny_night",
            "schedule=nightly",
            f"schedule.date={night}",
            "pruner=none",
            f"tracking.uri={tracking}",
            "progress=false",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def studies(tmp_path: Path) -> Iterator[Path]:
    write_prior_study(
        tmp_path, "tiny_night", sleep=0.4, n_trials=None, metric="log_loss", timeout=8
    )
    yield tmp_path


def test_of_two_runs_started_together_one_refuses_at_once_saying_already_running(
    studies: Path, mlflow_uri: str
) -> None:
    """Also the time bound: the other stops at study.timeout, closes its runs, exits 0."""
    runs = [hpo(studies, "2024-06-01", mlflow_uri) for _ in range(2)]
    outputs = {run.pid: run.communicate(timeout=300) for run in runs}
    ran, refused = sorted(runs, key=lambda run: run.returncode)
    out, err = outputs[ran.pid]
    message = outputs[refused.pid][1].strip()

    assert (ran.returncode, refused.returncode) == (0, 2), err
    assert message.startswith("error: nightly study 'tiny_night' is already running (night ")
    assert len(message.splitlines()) == 1
    assert f":{ran.pid}, since " in message, "it names the process holding the lock"
    assert "promoted to champion (first night" in out
    client = MlflowClient(mlflow_uri)
    names = ("tiny_night-2024-06-01", "tiny_night-nightly")
    experiments = [client.get_experiment_by_name(name) for name in names]
    logged = client.search_runs([e.experiment_id for e in experiments if e], max_results=1000)
    assert len(logged) > 3 and all(r.info.status != "RUNNING" for r in logged), "all closed"
    ledger = [r for r in logged if r.data.tags.get("hpo.role") == "night"]
    attempts = [r.data.tags["hpo.nightly.attempts"] for r in ledger]
    assert attempts == ["1"], "the refusal left no mark"
    storage = open_storage(StorageConfig(url=f"journal:{studies}/optuna.journal"))
    trials = optuna.load_study(study_name=names[0], storage=storage).trials
    assert trials and {t.state for t in trials} == {TrialState.COMPLETE}
    started = [t.datetime_start for t in trials if t.datetime_start]
    assert (max(started) - min(started)).total_seconds() < 8, "no trial starts past the timeout"
