"""tell: a trial's end is stored once in Optuna, whoever else ended it meanwhile."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpo.cv import CVResult
from hpo.runner.telling import tell
from hpo.tracking.records import TrialRecord


@pytest.mark.parametrize("outcome", ["COMPLETE", "PRUNED", "FAIL"])
def test_telling_a_trial_another_worker_already_failed_leaves_it_failed(tmp_path, outcome) -> None:
    """The watchdog elsewhere failed it (stale heartbeat): our late tell must not raise or undo."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))
    )
    study = optuna.create_study(storage=storage, direction="maximize")
    trial = study.ask()
    trial.report(0.5, 0)
    elsewhere = optuna.load_study(study_name=study.study_name, storage=storage)
    elsewhere.tell(trial.number, state=TrialState.FAIL)

    result = CVResult(0.9, 0.0, [0.9])
    tags = {"hpo.fail_reason": "boom"} if outcome == "FAIL" else {}
    tell(study, trial, TrialRecord(trial.number, outcome, {}, tags=tags), result, [0.9])

    stored = study.trials[0]
    assert stored.state == TrialState.FAIL
    assert "cv" not in stored.user_attrs


def test_telling_twice_keeps_the_first_outcome(tmp_path) -> None:
    """A retried tell after a dropped connection: the second is a no-op, not an error."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    record = TrialRecord(trial.number, "COMPLETE", {})
    tell(study, trial, record, CVResult(0.9, 0.0, [0.9]), [0.9])
    tell(study, trial, record, CVResult(0.9, 0.0, [0.9]), [0.9])
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].value == 0.9
