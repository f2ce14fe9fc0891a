"""Telling Optuna a trial's end: once, whoever else may have ended it meanwhile.

A trial's end can be written by more than one hand: this worker's tell, the
same tell retried after a dropped connection, or another worker failing the
trial as stale (hpo/runner/liveness.py). ``tell_once`` writes it unless it is
written already, and says which, so that no trial is ended twice in Optuna.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import constraints
from hpo.names import (
    CV_ATTR,
    CV_FIT_FACTS,
    CV_FOLD_VALUES,
    CV_STD,
    FAIL_REASON_ATTR,
    FAIL_REASON_TAG,
    FEASIBLE_ATTR,
    OOF_ATTR,
)

if TYPE_CHECKING:
    from hpo.cv import CVResult
    from hpo.tracking.records import TrialRecord


def fail_if_running(study: optuna.Study, trial: optuna.Trial) -> None:
    """Mark FAIL a trial this worker claimed but never told (SIGTERM just after claim())."""
    with contextlib.suppress(Exception):
        tell_once(study, trial, TrialState.FAIL)


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    record: TrialRecord,
    result: CVResult | None,
    values: list[float],
    oof: list[Any] | None = None,
    judged: Mapping[str, float] | None = None,
) -> bool:
    """Store the trial's CV facts in one user attr (and its out-of-fold scores, ``oof``, in
    another), its constraint values (``judged``) as Optuna's constraints, then its final
    state (once: safe to retry).

    False when the trial had ended already (see ``tell_once``)."""
    attrs: dict[str, Any] = {OOF_ATTR: oof} if oof is not None else {}
    if result is not None:
        attrs[CV_ATTR] = {
            CV_STD: result.std,
            CV_FOLD_VALUES: result.fold_values,
            CV_FIT_FACTS: result.fit_facts,
        }
    if record.state == "FAIL":
        attrs[FAIL_REASON_ATTR] = record.tags[FAIL_REASON_TAG]
        return tell_once(study, trial, TrialState.FAIL, attrs=attrs)
    if judged is not None:
        attrs[FEASIBLE_ATTR] = constraints.met(judged)
    if record.state == "PRUNED":
        return tell_once(study, trial, TrialState.PRUNED, attrs=attrs, judged=judged)
    assert result is not None
    return tell_once(study, trial, None, values, attrs, judged)


def tell_once(
    study: optuna.Study,
    trial: optuna.Trial | FrozenTrial,
    state: TrialState | None,
    values: Sequence[float] | None = None,
    attrs: Mapping[str, Any] | None = None,
    judged: Mapping[str, float] | None = None,
) -> bool:
    """Store ``attrs`` on the trial (and the constraint values ``judged``, where the
    sampler's ``after_trial`` reads them), then tell Optuna its end, unless it has ended already.

    True when this call ended it. A trial already finished (told before the
    connection dropped, failed as stale meanwhile, or failed by another worker
    reaping it at the same moment) is left as it is, and False says so: that
    is found out from the write that refuses it rather than by reading the
    trial first, a round trip per trial. ``state`` None: COMPLETE with
    ``values`` (FAIL when Optuna finds them infeasible), as ``study.tell``.
    """
    trial_id = trial._trial_id
    try:
        for key, value in (attrs or {}).items():
            study._storage.set_trial_user_attr(trial_id, key, value)
        if judged:  # Optuna's own record, before tell: the sampler's after_trial reads it
            assert isinstance(trial, optuna.Trial), "constraints are set on a running trial"
            constraints.store(trial, judged)
        told = trial if isinstance(trial, optuna.Trial) else trial.number
        study.tell(told, values, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:  # ended after tell read it, or before
        return False  # the attrs were written
    except ValueError:  # "Cannot tell a FAIL trial": it had ended when tell read it
        if study._storage.get_trial(trial_id).state.is_finished():
            return False
        raise
    return True
