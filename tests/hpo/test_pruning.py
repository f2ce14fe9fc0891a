"""hpo.pruning: QueuedStepReporter decides as trial.report + should_prune would, writes land in
order; multi-objective studies get no pruner; fold pruning reports the running mean."""

import logging
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpo.config import ExtraObjective
from hpo.pruning import QueuedStepReporter, fold_should_prune, without_pruning

CURVES = [[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.55, 0.6], [0.6, 0.7, 0.75, 0.9], [0.3, 0.35]]


def journal(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def study_with_history(storage, pruner) -> optuna.Study:
    # one name for both studies compared: Hyperband picks a trial's bracket from it
    study = optuna.create_study(
        storage=storage, study_name="curves", direction="maximize", pruner=pruner
    )
    for curve in CURVES:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
            trial.should_prune()  # SHA and Hyperband keep each trial's rungs as it goes
        if len(curve) == 4:
            study.tell(trial, curve[-1])
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return study


def decisions(study: optuna.Study, curve: list[float], ours: bool) -> list[bool]:
    trial = study.ask()
    reports = QueuedStepReporter(study, trial) if ours else None
    said = []
    for step, value in enumerate(curve):
        if reports is not None:
            said.append(reports.should_prune(step, value))
        else:
            trial.report(value, step)
            said.append(trial.should_prune())
    if reports is not None:
        reports.flush()
    study.tell(trial, state=TrialState.PRUNED)
    return said


@pytest.mark.parametrize(
    "pruner",
    [
        lambda: optuna.pruners.MedianPruner(n_startup_trials=2),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=4),
    ],
    ids=["median", "sha", "hyperband"],
)
def test_the_pruner_decides_as_it_does_with_optunas_own_report(tmp_path, pruner):
    curve = [0.45, 0.5, 0.52, 0.55]
    theirs = decisions(study_with_history(journal(tmp_path / "a"), pruner()), curve, ours=False)
    ours = decisions(study_with_history(journal(tmp_path / "b"), pruner()), curve, ours=True)
    assert ours == theirs
    assert any(theirs) or pruner().__class__ is optuna.pruners.HyperbandPruner


def test_the_values_are_stored_in_step_order_by_the_time_flush_returns(tmp_path):
    study = optuna.create_study(storage=journal(tmp_path / "j"), direction="maximize")
    trial = study.ask()
    reports = QueuedStepReporter(study, trial)
    for step in range(50):
        reports.should_prune(step, step / 100)
    reports.flush()
    study.tell(trial, state=TrialState.PRUNED)
    reloaded = journal(tmp_path / "j").get_all_trials(study._study_id)[0]
    assert reloaded.intermediate_values == {s: s / 100 for s in range(50)}
    assert reloaded.value == pytest.approx(0.49), "a pruned trial's value is its last step"


def test_a_trial_far_below_the_others_is_pruned(tmp_path):
    study = study_with_history(journal(tmp_path / "j"), optuna.pruners.MedianPruner(1))
    reports = QueuedStepReporter(study, study.ask())
    assert reports.should_prune(0, 0.01)
    reports.flush()


def test_a_multi_objective_study_gets_no_pruner_and_one_warning(caplog):
    further = (ExtraObjective("trainable_params", "minimize"),)
    with caplog.at_level(logging.WARNING, logger="hpo.pruning"):
        pruner = without_pruning(further, optuna.pruners.MedianPruner())
    assert isinstance(pruner, optuna.pruners.NopPruner)
    assert [r.getMessage() for r in caplog.records] == [
        "multi-objective studies cannot be pruned (Optuna): MedianPruner is not used; "
        "pass pruner=none to silence this"
    ]


def test_a_single_objective_study_keeps_its_pruner(caplog):
    median = optuna.pruners.MedianPruner()
    assert without_pruning((), median) is median
    assert caplog.records == []


def test_fold_pruning_reports_the_running_mean_at_the_fold_index():
    calls = []
    fold_should_prune(lambda step, value: calls.append((step, value)) or False, 2, [1.0, 2.0, 6.0])
    assert calls == [(2, 3.0)]


def test_a_study_under_pruner_wilcoxon_stores_each_fold_s_score_at_its_fold(make_cfg):
    """The paired test's input, as Optuna stores it: step k is fold k's own score."""
    from hpo.names import CV_ATTR, CV_FOLD_VALUES
    from hpo.runner import make_plan, run
    from tests.hpo.runner.helpers import FAST_XGB, load

    cfg = make_cfg("study=xgb_f1", "pruner=wilcoxon", "study.n_trials=3", *FAST_XGB)
    assert isinstance(make_plan(cfg).pruner, optuna.pruners.WilcoxonPruner)
    run(cfg)
    for trial in load(cfg).trials:
        folds = trial.user_attrs[CV_ATTR][CV_FOLD_VALUES]
        reported = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
        assert reported == pytest.approx(folds[: len(reported)])
        assert sorted(trial.intermediate_values) == list(range(len(reported)))
