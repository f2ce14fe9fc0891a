"""hpo.check: a real study, MLflow damaged by hand, each mismatch found and repaired."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.check import ORPHAN, check, open_check
from hpo.config import Config
from hpo.names import PARENT_ATTR, RUN_ATTR
from hpo.storages import open_storage
from tests.hpo.check.conftest import client, problems, repair, run_of, trials


def test_a_study_and_its_experiment_agree_after_a_run(cfg: Config, capsys) -> None:
    states = trials(cfg)
    assert run_of(cfg, states[TrialState.COMPLETE]).info.status == "FINISHED"
    assert run_of(cfg, states[TrialState.FAIL]).info.status == "FAILED"
    assert open_check(cfg).mismatches() == []
    assert check(cfg) == 0
    assert "MLflow agrees" in capsys.readouterr().out


def test_runs_left_running_are_closed_as_their_trials_ended(cfg: Config, capsys) -> None:
    """A writer that died before it drained leaves runs RUNNING for finished trials."""
    states = trials(cfg)
    mlflow = client(cfg)
    for trial in states.values():
        run_id = trial.user_attrs[RUN_ATTR]
        mlflow.update_run(run_id, status="RUNNING")
        mlflow.set_tag(run_id, "hpo.state", "RUNNING")

    found = open_check(cfg).mismatches()
    numbers = sorted(t.number for t in states.values())
    assert problems(found) == [(n, "stale RUNNING run") for n in numbers]
    assert check(cfg) == 1
    out = capsys.readouterr().out
    assert "stale RUNNING run" in out and "2 mismatches" in out and "repair=true" in out

    repair(cfg)
    done = run_of(cfg, states[TrialState.COMPLETE])
    assert (done.info.status, done.data.tags["hpo.state"]) == ("FINISHED", "COMPLETE")
    failed = run_of(cfg, states[TrialState.FAIL])
    assert (failed.info.status, failed.data.tags["hpo.state"]) == ("KILLED", "KILLED")
    assert "too large" in failed.data.tags["hpo.fail_reason"], "Optuna's reason is kept"


def test_states_and_tags_are_set_from_optuna(cfg: Config) -> None:
    states = trials(cfg)
    mlflow = client(cfg)
    complete, fail = (
        states[s].user_attrs[RUN_ATTR] for s in (TrialState.COMPLETE, TrialState.FAIL)
    )
    mlflow.update_run(complete, status="FAILED")
    mlflow.set_tag(fail, "hpo.state", "COMPLETE")
    mlflow.update_run(fail, status="FINISHED")

    found = open_check(cfg).mismatches()
    assert problems(found) == sorted(
        [(states[TrialState.COMPLETE].number, "state differs"),
         (states[TrialState.FAIL].number, "state differs")]
    )  # fmt: skip
    repair(cfg)
    assert run_of(cfg, states[TrialState.COMPLETE]).info.status == "FINISHED"
    failed = run_of(cfg, states[TrialState.FAIL])
    assert (failed.info.status, failed.data.tags["hpo.state"]) == ("FAILED", "FAIL")


def test_a_pruned_trial_without_a_run_gets_one_from_the_trial(cfg: Config) -> None:
    study = optuna.load_study(study_name=cfg.study.name, storage=open_storage(cfg.storage))
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"x": 0.3},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            intermediate_values={0: 0.61},
        )
    )
    pruned = study.trials[-1]

    assert problems(open_check(cfg).mismatches()) == [(pruned.number, "missing run")]
    repair(cfg)
    mlflow = client(cfg)
    experiment = mlflow.get_experiment_by_name(cfg.study.name)
    assert experiment is not None
    (created,) = mlflow.search_runs(
        [experiment.experiment_id], f"tags.`hpo.trial` = '{pruned.number}'"
    )
    assert (created.info.status, created.data.tags["hpo.state"]) == ("FINISHED", "PRUNED")
    assert created.data.params == {"x": "0.3"}
    assert created.data.tags["mlflow.parentRunId"] == study.user_attrs[PARENT_ATTR]
    assert created.data.tags["hpo.repaired"] == "hpo.check"


def test_duplicate_and_orphan_runs_are_tagged_not_deleted(cfg: Config) -> None:
    states = trials(cfg)
    mlflow = client(cfg)
    check_ = open_check(cfg)
    parent = check_.study.user_attrs[PARENT_ATTR]
    number = states[TrialState.COMPLETE].number
    tags = {"mlflow.parentRunId": parent}
    duplicate = mlflow.create_run(check_.experiment_id, tags={**tags, "hpo.trial": str(number)})
    ghost = mlflow.create_run(check_.experiment_id, tags={**tags, "hpo.trial": "42"})
    stranger = mlflow.create_run(check_.experiment_id, run_name="by hand")
    before = len(check_._runs())

    found = check_.mismatches()
    assert problems(found) == sorted(
        [(number, "duplicate run"), (42, "orphan run"), (-1, "orphan run")]
    )
    assert {m.run_id for m in found} == {r.info.run_id for r in (duplicate, ghost, stranger)}
    repair(cfg)
    assert len(check_._runs()) == before, "nothing deleted"
    for surplus in (duplicate, ghost, stranger):
        kept = mlflow.get_run(surplus.info.run_id)
        assert kept.info.status == "KILLED" and ORPHAN in kept.data.tags
    own = run_of(cfg, states[TrialState.COMPLETE])
    assert own.info.status == "FINISHED" and ORPHAN not in own.data.tags


def test_a_deleted_parent_is_restored_and_an_extra_one_marked(cfg: Config) -> None:
    check_ = open_check(cfg)
    mlflow = client(cfg)
    parent = check_.study.user_attrs[PARENT_ATTR]
    mlflow.delete_run(parent)
    extra = mlflow.create_run(check_.experiment_id, tags={"hpo.role": "study"})

    assert problems(check_.mismatches()) == [(-1, "extra parent run"), (-1, "parent run deleted")]
    repair(cfg)
    assert mlflow.get_run(parent).info.lifecycle_stage == "active"
    assert ORPHAN in mlflow.get_run(extra.info.run_id).data.tags


def test_a_lost_parent_is_recreated_and_the_children_moved_to_it(cfg: Config) -> None:
    """The parent run gone for good (another experiment's id in the attr): a new one, linked."""
    check_ = open_check(cfg)
    mlflow = client(cfg)
    old = check_.study.user_attrs[PARENT_ATTR]
    mlflow.delete_run(old)
    check_.study.set_user_attr(PARENT_ATTR, "0" * 32)

    assert problems(check_.mismatches()) == [(-1, "no parent run")]
    repair(cfg)  # two passes: the parent, then its children's links
    new = check_.study.user_attrs[PARENT_ATTR]
    assert new != old
    children = [
        r
        for r in check_._runs()
        if r.data.tags.get("hpo.trial") and r.info.lifecycle_stage == "active"
    ]
    assert len(children) == len(check_.study.trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {new}


def test_a_parent_left_running_is_closed_as_killed(cfg: Config) -> None:
    check_ = open_check(cfg)
    parent = check_.study.user_attrs[PARENT_ATTR]
    client(cfg).update_run(parent, status="RUNNING")

    assert problems(check_.mismatches()) == [(-1, "stale parent run")]
    repair(cfg)
    assert client(cfg).get_run(parent).info.status == "KILLED"
