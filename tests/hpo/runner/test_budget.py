"""claim: the budget, a grid's size, and grid points retried but never run twice."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from hpo.runner import run
from hpo.runner.budget import claim, worker_name
from tests.hpo.runner.helpers import PRIOR, load


def test_grid_budget_defaults_to_grid_size(make_cfg) -> None:
    cfg = make_cfg(*PRIOR, "+study.space.x.step=0.5", "sampler=grid", "study.n_trials=null")
    run(cfg)
    values = sorted(t.params["x"] for t in load(cfg).trials)
    assert values == [0.0, 0.5, 1.0]


def test_a_grid_point_that_failed_once_is_run_again_and_no_point_twice(make_cfg) -> None:
    cfg = make_cfg(
        *PRIOR,
        "+study.space.x.step=0.5",
        "sampler=grid",
        "study.n_trials=null",
        "study.objective._target_=tests.hpo.helpers.FlakyObjective",
        "+study.objective.flaky=[0.5]",
        "n_jobs=1",
    )
    run(cfg)
    trials = load(cfg).trials
    complete = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0.0, 0.5, 1.0], "every point once: the failed one again, none twice"
    assert [t.params["x"] for t in trials if t.state == TrialState.FAIL] == [0.5]


def test_a_grid_point_that_always_fails_is_given_up_after_max_retry(make_cfg) -> None:
    cfg = make_cfg(
        *PRIOR,
        "+study.space.x.step=0.5",
        "sampler=grid",
        "study.n_trials=null",
        "+study.objective.fail_above=0.75",
        "storage.max_retry=2",
    )
    summary = run(cfg)
    trials = load(cfg).trials
    complete = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0.0, 0.5]
    assert [t.params["x"] for t in trials if t.state == TrialState.FAIL] == [1.0] * 3
    assert summary.counts["FAIL"] == 3, "tried once and retried twice, then given up"


def test_a_trial_whose_claim_lost_its_connection_is_failed_at_the_next_claim(tmp_path) -> None:
    """ask() stored, then the connection dropped before its worker was marked: the next
    claim fails that trial at once rather than letting it hold a budget slot for minutes
    (issue 11, defect 4). A trial another live worker runs is left alone."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))
    )
    study = optuna.create_study(storage=storage)
    lost = study.ask()  # no worker attr: its claim died between the two writes
    mine_before = study.ask()
    mine_before.set_user_attr("worker", worker_name())  # this process, which runs none now
    elsewhere = study.ask()
    elsewhere.set_user_attr("worker", "another-host:1")

    trial = claim(study, storage, budget=3, tracker=None, deadline=math.inf)

    assert trial is not None and trial.number == 3
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {
        0: TrialState.FAIL,
        1: TrialState.FAIL,
        2: TrialState.RUNNING,
        3: TrialState.RUNNING,
    }
    assert "connection dropped" in study.trials[lost.number].user_attrs["fail_reason"]
    assert study.trials[3].user_attrs["worker"] == worker_name(), "owned as it was claimed"


def test_a_trial_failed_as_an_orphan_gets_its_failed_mlflow_run(tmp_path) -> None:
    """Every finished trial has its MLflow run (fault matrix (c), seen on pg-restart): the
    orphan's says why it failed."""
    from mlflow.tracking import MlflowClient

    from hpo.config import TrackingConfig
    from hpo.tracking.tracker import Tracker

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))
    )
    study = optuna.create_study(storage=storage, study_name="orphans")
    study.ask()  # no worker attr: its claim died between the two writes
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(
        TrackingConfig(uri=uri, writer="inline", spool=str(tmp_path)), "orphans", "tpe"
    )
    tracker.open_parent(None, {})

    claim(study, storage, budget=2, tracker=tracker, deadline=math.inf)
    tracker.flush()

    (run,) = [
        r
        for r in MlflowClient(uri).search_runs([tracker.experiment_id])
        if r.data.tags.get("hpo.trial") == "0"
    ]
    assert (run.info.status, run.data.tags["hpo.state"]) == ("FAILED", "FAIL")
    assert "connection dropped" in run.data.tags["hpo.fail_reason"]


def test_a_claim_whose_owner_mark_fails_leaves_a_reasoned_fail_and_its_run(
    tmp_path, monkeypatch
) -> None:
    """The connection drops on the worker mark itself and the database is back at once: the
    claim fails its trial with why, and gives it a FAILED run (seen in CI under connection
    kills: a FAIL with no fail_reason and no run), then the error goes on to be waited out."""
    import pytest
    from mlflow.tracking import MlflowClient
    from sqlalchemy.exc import OperationalError

    from hpo.config import TrackingConfig
    from hpo.tracking.tracker import Tracker

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))
    )
    study = optuna.create_study(storage=storage, study_name="marks")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(TrackingConfig(uri=uri, writer="inline", spool=str(tmp_path)), "marks", "tpe")
    tracker.open_parent(None, {})
    dropped = OperationalError("UPDATE", {}, Exception("server closed the connection"))

    def mark_fails(self: optuna.Trial, key: str, value: object) -> None:
        raise dropped

    monkeypatch.setattr(optuna.Trial, "set_user_attr", mark_fails)
    with pytest.raises(OperationalError):
        claim(study, storage, budget=2, tracker=tracker, deadline=math.inf)
    tracker.flush()

    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert "connection dropped" in trial.user_attrs["fail_reason"]
    (run,) = [
        r
        for r in MlflowClient(uri).search_runs([tracker.experiment_id])
        if r.data.tags.get("hpo.trial") == "0"
    ]
    assert (run.info.status, run.data.tags["hpo.state"]) == ("FAILED", "FAIL")
