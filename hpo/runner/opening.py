"""Opening a study: create or resume it, and refuse to join one it does not match.

Opening happens under the study lock, so that two workers starting at once
create the study once, agree on its parent MLflow run, and both see a
study created for another direction, metric or space refused with the fix.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo.constraints import describe
from hpo.errors import UserError
from hpo.names import (
    CONFIG_ARTIFACT,
    CONSTRAINTS_ATTR,
    CONSTRAINTS_TAG,
    DATA_ATTR,
    DIRECTION_TAG,
    FOLDS_ATTR,
    METRIC_TAG,
    OBJECTIVES_TAG,
    PARENT_ATTR,
    VERSION_PREFIX,
)
from hpo.runner.liveness import recover
from hpo.runner.plan import Plan
from hpo.storages import study_lock
from hpo.versions import watched_installed

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker


def open_study(
    plan: Plan, storage: optuna.storages.BaseStorage, tracker: Tracker | None
) -> optuna.Study:
    """Create or resume the study (and its MLflow parent run) under the study lock."""
    name = plan.spec.name
    with study_lock(storage, name):
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=plan.directions,
            sampler=plan.sampler,
            pruner=plan.pruner,
            load_if_exists=True,
        )
        check_compatible(study, plan)
        recover(study, tracker)
        if tracker is not None:
            _open_parent(study, plan, tracker)
    return study


def _open_parent(study: optuna.Study, plan: Plan, tracker: Tracker) -> None:
    """The study's MLflow parent run: the one it has, or a new one remembered on the study."""
    existing = study.user_attrs.get(PARENT_ATTR)
    tags = {METRIC_TAG: plan.spec.metric, DIRECTION_TAG: plan.direction}
    if plan.further_objectives:
        tags[OBJECTIVES_TAG] = ", ".join(f"{o.name} {o.direction}" for o in plan.further_objectives)
    if plan.constraints:
        tags[CONSTRAINTS_TAG] = describe(plan.constraints)
    tags |= {VERSION_PREFIX + dist: v for dist, v in watched_installed()}  # for hpo.replay
    parent = tracker.open_parent(existing, tags)
    if parent != existing:
        study.set_user_attr(PARENT_ATTR, parent)
        if plan.config_text:  # the composed config, for hpo.replay: before any trial ends
            tracker.log_study({}, {}, [(CONFIG_ARTIFACT, plan.config_text)])


def check_compatible(study: optuna.Study, plan: Plan) -> None:
    """Refuse to join a study created for another direction, metric, space, data or folds:
    its trials would not be comparable with the new ones."""
    name = plan.spec.name
    directions = [d.name.lower() for d in study.directions]
    if directions != plan.directions:
        raise UserError(
            f"study '{name}' exists with direction {', '.join(directions)}, "
            f"not {', '.join(plan.directions)}: keep its directions or set study.name=NEW_NAME"
        )
    stored = {"metric": plan.spec.metric, "space": plan.space.fingerprint()}
    for key, value in stored.items():
        old = study.user_attrs.get(key)
        if old is None:
            study.set_user_attr(key, value)
        elif old != value:
            what = _space_diff(old, value) if key == "space" else f"metric {old}"
            raise UserError(
                f"study '{name}' exists with another {key} ({what}): resume it "
                "unchanged or set study.name=NEW_NAME"
            )
    _check_constraints(study, plan)
    for key, what, now in (
        (DATA_ATTR, "data", plan.data_print()),
        (FOLDS_ATTR, "CV folds", plan.folds_print()),
    ):
        old = study.user_attrs.get(key)
        if old is None:
            study.set_user_attr(key, now)
        elif old.get("hash") != now["hash"]:
            raise UserError(
                f"study '{name}' exists with other {what} ({old.get('what')}; now {now['what']}): "
                "its trials were scored on those; resume it unchanged or set study.name=NEW_NAME"
            )


def _check_constraints(study: optuna.Study, plan: Plan) -> None:
    """Refuse to resume a study under other constraints: its trials' constraint values (and
    so which of them may win) were judged against the old bounds. A study that has trials
    but no record of its constraints was run without any."""
    now = describe(plan.constraints)
    old = study.user_attrs.get(CONSTRAINTS_ATTR)
    if old is None:  # a new study (enqueued trials are not judged yet), or one from before
        judged = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        old = "" if judged else now
        if old == now:
            study.set_user_attr(CONSTRAINTS_ATTR, now)
    if old != now:
        raise UserError(
            f"study '{plan.spec.name}' exists with "
            f"{f'constraints {old}' if old else 'no constraints'}, not {now or 'none'}: "
            "resume it unchanged or set study.name=NEW_NAME"
        )


def _space_diff(old: str, new: str) -> str:
    before, after = json.loads(old), json.loads(new)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return "parameter " + ", ".join(changed) + " differs"
