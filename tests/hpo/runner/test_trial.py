"""evaluate: every way a trial ends is stored once, in both stores."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.runner import run
from hpo.runner import trial as trial_module
from hpo.runner.liveness import Dead, reap
from tests.hpo.helpers import ALWAYS_PRUNE
from tests.hpo.runner.helpers import PRIOR, load, runs


@pytest.mark.parametrize("key", ["worker", "mlflow_run_id"])
def test_an_interrupt_while_a_trial_starts_still_fails_it_and_kills_its_run(
    make_cfg, monkeypatch, key
) -> None:
    """Ctrl-C (or SIGTERM) just as the trial's worker (claimed) or run (started) is written:
    FAIL, its run KILLED if it had one, else a FAILED run saying why; never RUNNING."""
    cfg = make_cfg(*PRIOR, "study.n_trials=2")
    real = optuna.trial.Trial.set_user_attr
    calls: list[str] = []

    def interrupted_once(trial: optuna.trial.Trial, name: str, value: object) -> None:
        calls.append(name)
        if calls.count(key) == 1 and name == key:
            raise KeyboardInterrupt
        real(trial, name, value)

    monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.undo()

    (trial,) = load(cfg).trials
    assert trial.state == TrialState.FAIL
    _, children = runs(cfg)
    if key == "worker":  # claimed, not started: a FAILED run says so, as every finished trial's
        assert trial.user_attrs["fail_reason"] == "interrupted as it was claimed: no worker ran it"
        assert [c.info.status for c in children] == ["FAILED"]
        assert children[0].data.tags["hpo.fail_reason"] == trial.user_attrs["fail_reason"]
    else:
        assert trial.user_attrs["fail_reason"].startswith("KeyboardInterrupt")
        assert [c.info.status for c in children] == ["KILLED"]


def test_a_pruned_trials_run_logs_its_partial_mean_under_a_name_that_says_so(make_cfg) -> None:
    """Sorting runs by the study metric in the MLflow UI never ranks a partial mean."""
    cfg = make_cfg(
        "study=tiny_prior", "pruner=median", "study.n_trials=2", "n_jobs=1", *ALWAYS_PRUNE
    )
    run(cfg)
    study = load(cfg)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    _, children = runs(cfg)
    client = MlflowClient(cfg.tracking.uri)
    for child in children:
        metrics = child.data.metrics
        assert "roc_auc" not in metrics and "roc_auc_std" not in metrics
        assert not any(k.startswith("oof_roc") for k in metrics)
        assert metrics["roc_auc_partial"] == pytest.approx(0.5)
        assert metrics["n_folds_run"] == 1
        folds = client.get_metric_history(child.info.run_id, "roc_auc_partial_fold")
        assert [m.value for m in folds] == pytest.approx([0.5])
        number = int(child.data.tags["hpo.trial"])
        assert child.info.run_name == f"trial-{number:04d}-pruned", "told apart at a glance"


def test_a_worker_that_wakes_after_its_trial_was_reaped_writes_neither_store(
    make_cfg, monkeypatch
) -> None:
    """Stalled past the grace (SIGSTOP), its trial failed and its run KILLED by another
    worker: on waking, its result is dropped, so both stores keep saying FAIL/KILLED."""
    cfg = make_cfg(*PRIOR, "study.n_trials=1")
    real = trial_module.cross_validate
    stalled: list[int] = []

    def reaped_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        if not stalled:  # the first trial only: another worker reaps it before it ends
            study = load(cfg)
            (running,) = study.get_trials(states=(TrialState.RUNNING,))
            stalled.append(running.number)
            reap(study, [Dead(running, "its worker stopped (no heartbeat for over 20 s)")], None)
            client = MlflowClient(cfg.tracking.uri)
            client.set_tag(running.user_attrs["mlflow_run_id"], "hpo.state", "KILLED")
            client.set_terminated(running.user_attrs["mlflow_run_id"], status="KILLED")
        return result

    monkeypatch.setattr(trial_module, "cross_validate", reaped_meanwhile)
    run(cfg)

    first, retried = load(cfg).trials
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"].startswith("its worker stopped")
    assert "cv" not in first.user_attrs
    assert retried.state == TrialState.COMPLETE and retried.params == first.params
    _, (killed, finished) = runs(cfg)
    assert (killed.info.status, killed.data.tags["hpo.state"]) == ("KILLED", "KILLED")
    assert "roc_auc" not in killed.data.metrics
    assert (finished.info.status, finished.data.tags["hpo.state"]) == ("FINISHED", "COMPLETE")
