"""Opening a study: create or resume it, and refuse to join one it does not match.

Opening happens under the study lock, so that two workers starting at once
create the study once, agree on its parent MLflow run, and both see a
study created for another direction, metric or space refused with the fix.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo.config import Config
from hpo.errors import UserError
from hpo.names import (
    DATA_ATTR,
    DIRECTION_TAG,
    FOLDS_ATTR,
    METRIC_TAG,
    OBJECTIVES_TAG,
    PARENT_ATTR,
    WORKER_ATTR,
)
from hpo.runner.liveness import alive, recover
from hpo.runner.plan import Plan
from hpo.storages import serves_one_worker, study_lock

if TYPE_CHECKING:
    from hpo.tracking.tracker import Tracker


def open_study(
    cfg: Config, plan: Plan, storage: optuna.storages.BaseStorage, tracker: Tracker | None
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
        refuse_second_sqlite_worker(study, cfg.storage.url)
        if tracker is not None:
            _open_parent(study, plan, tracker)
    return study


def _open_parent(study: optuna.Study, plan: Plan, tracker: Tracker) -> None:
    """The study's MLflow parent run: the one it has, or a new one remembered on the study."""
    existing = study.user_attrs.get(PARENT_ATTR)
    tags = {METRIC_TAG: plan.spec.metric, DIRECTION_TAG: plan.direction}
    if plan.further_objectives:
        tags[OBJECTIVES_TAG] = ", ".join(f"{o.name} {o.direction}" for o in plan.further_objectives)
    parent = tracker.open_parent(existing, tags)
    if parent != existing:
        study.set_user_attr(PARENT_ATTR, parent)


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


def refuse_second_sqlite_worker(study: optuna.Study, url: str) -> None:
    """A store that serves one worker process (SQLite): another live one on this study is
    refused, by pid."""
    if not serves_one_worker(url.strip()):
        return
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR, "")
        if worker.startswith(host + ":") and alive(int(worker.rsplit(":", 1)[1])):
            raise UserError(
                f"process {worker.rsplit(':', 1)[1]} is already running study "
                f"'{study.study_name}' on SQLite, which serves one worker: wait for it, or "
                "use storage=postgres (many machines) or storage=local (one machine)"
            )


def _space_diff(old: str, new: str) -> str:
    before, after = json.loads(old), json.loads(new)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return "parameter " + ", ".join(changed) + " differs"
