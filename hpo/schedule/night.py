"""``schedule=nightly``: one dated study per night, warm-started, promoting a champion model.

The night runs as a wrapper around hpo.runner.run, in this order:

1. take the study's nightly lock, or exit at once ("already running");
2. open the night's ledger run (``<study>-nightly`` experiment, run ``<date>``);
3. read the data, log its fingerprint, note a change since the previous night;
4. create ``<study>-<date>`` and enqueue the previous night's best parameters;
5. run the study to its budget or timeout (resuming if it was started before);
6. register the refit best model; it takes the ``champion`` alias only if it
   beats the champion on tonight's folds (hpo/schedule/champion.py);
7. write the report of all nights so far, and close the ledger run.

A failure at any step closes the ledger run FAILED (KILLED when interrupted)
with the reason, and leaves the champion where it was.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np
import optuna
from mlflow.tracking import MlflowClient

from hpo import failpoints, report
from hpo.config import Config
from hpo.errors import UserError
from hpo.names import (
    DATA_CHANGED_TAG,
    FINGERPRINT_TAG,
    NIGHT_TAG,
    NIGHTLY_DATE_TAG,
    NIGHTLY_LEDGER_RUN_TAG,
    NIGHTLY_PARENT_RUN_TAG,
    NIGHTLY_SEED_TAG,
    PARENT_ATTR,
    STUDY_TAG,
    WARM_START_TAG,
)
from hpo.runner import make_plan, run
from hpo.schedule import history
from hpo.schedule.champion import Decision, challenge
from hpo.schedule.ledger import Ledger
from hpo.schedule.lock import night_lock
from hpo.schedule.names import dated, night_of
from hpo.schedule.warm_start import warm_start
from hpo.secrets import mask
from hpo.storages import init_lock, open_storage, storage_url
from hpo.tracking.store import default_artifacts

log = logging.getLogger(__name__)
REPORT = "nightly/report.html"


class NightFailed(RuntimeError):
    """The night ran but produced nothing to promote."""


def run_scheduled(cfg: Config) -> report.Summary:
    """Run the configured study as tonight's dated study (``schedule.kind: nightly``)."""
    kind = cfg.schedule.kind
    if kind != "nightly":
        raise UserError(f"schedule.kind is '{kind}': use schedule=nightly or schedule=none")
    if not cfg.tracking.enabled:
        raise UserError(
            "schedule=nightly keeps its champion in the MLflow model registry: "
            "leave tracking.enabled=true"
        )
    if int(cfg.workers) > 1 or cfg.trials_only:
        raise UserError(
            "schedule=nightly runs in one process: drop workers=N; more workers can join "
            "tonight's study with study.name=NAME-YYYY-MM-DD trials_only=true"
        )
    base = str(cfg.study.name)
    night = night_of(cfg.schedule.date)
    with night_lock(storage_url(cfg.storage), base, night):
        uri = str(cfg.tracking.uri)
        with init_lock(uri, "mlflow-schema"):  # the first use of a store creates its tables
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            ledger = Ledger(client, base, cfg.tracking.artifact_location or default_artifacts(uri))
        ledger.open(night, dated(base, night))
        parent: list[str] = []  # the night's parent run, once it exists
        try:
            summary = _night(cfg, base, night, client, ledger, parent)
        except BaseException as err:
            status = "FAILED" if isinstance(err, Exception) else "KILLED"
            ledger.close(status, mask(f"{type(err).__name__}: {err}".splitlines()[0])[:500])
            _publish(ledger, base, str(cfg.study.metric), night, parent)
            raise
        ledger.close()
        failpoints.reached("night.closed")
        _publish(ledger, base, str(cfg.study.metric), night, parent)
        return summary


def night_seed(seed: int, night: str) -> int:
    """The sampler's seed on ``night``: from (seed, date), so that each night explores new
    points (a fixed seed would redraw last night's start-up trials exactly) while a rerun
    of the same night draws the same ones. Only the sampler's: data and folds keep
    ``seed``, so nights stay comparable fold by fold."""
    return int(np.random.SeedSequence([seed, int(night.replace("-", ""))]).generate_state(1)[0])


def _night(
    cfg: Config,
    base: str,
    night: str,
    client: MlflowClient,
    ledger: Ledger,
    parent: list[str],
) -> report.Summary:
    name = dated(base, night)
    seed = night_seed(cfg.seed, night)
    sampler = {**cfg.sampler, "seed": seed} if "seed" in cfg.sampler else cfg.sampler
    cfg = dataclasses.replace(cfg, study=dataclasses.replace(cfg.study, name=name), sampler=sampler)
    plan = make_plan(cfg)
    fingerprint = plan.data.fingerprint()
    note = _data_change(ledger, night, fingerprint)
    data_tags = {FINGERPRINT_TAG: fingerprint, **({DATA_CHANGED_TAG: note} if note else {})}
    ledger.record(data_tags)
    if note:
        log.warning("%s", note)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # as run()
    storage = open_storage(cfg.storage)
    warm = warm_start(storage, plan, base, night, int(cfg.schedule.warm_start))
    tags = {
        **data_tags,
        NIGHTLY_DATE_TAG: night,
        NIGHTLY_LEDGER_RUN_TAG: str(ledger.run_id),
        WARM_START_TAG: warm.line(),
        **({NIGHTLY_SEED_TAG: str(seed)} if "seed" in cfg.sampler else {}),
    }
    try:
        summary = run(cfg, plan)
        assert summary is not None  # not trials_only: run() reports
    finally:  # a failed night's parent run is tagged too
        parent += _tag_parent(storage, name, client, ledger, tags)
    failpoints.reached("night.trials-done")
    study = optuna.load_study(study_name=name, storage=storage)
    ledger.record({}, {"best_value": summary.best_value})
    if summary.best_value is None:
        what = "met the constraints" if summary.constraints else "completed"
        raise NightFailed(f"no trial of {name} {what}: nothing to promote, the champion stays")
    model_name = str(cfg.schedule.model_name or base)
    decision = challenge(
        plan,
        study,
        client,
        model_name,
        str(cfg.schedule.alias),
        float(cfg.schedule.min_improvement),
        {NIGHT_TAG: night, STUDY_TAG: name, FINGERPRINT_TAG: fingerprint},
        float(cfg.schedule.alpha),
    )
    failpoints.reached("night.promoted")
    ledger.record(decision.tags(), _figures(decision))
    summary.where |= {
        "warm start": warm.line(),
        "data": note or f"fingerprint {fingerprint}",
        "champion": f"registered model '{model_name}': {decision.line()}",
        "nightly report": f"{REPORT} on run {night} of experiment '{ledger.name}'",
    }
    return summary


def _tag_parent(
    storage: optuna.storages.BaseStorage,
    name: str,
    client: MlflowClient,
    ledger: Ledger,
    tags: dict[str, str],
) -> list[str]:
    """Tag the night's parent run, if it was created; [its id] or []."""
    try:
        parent = optuna.load_study(study_name=name, storage=storage).user_attrs.get(PARENT_ATTR)
        if parent is None:
            return []
        for key, value in tags.items():
            client.set_tag(parent, key, value)
        ledger.record({NIGHTLY_PARENT_RUN_TAG: parent})
        return [parent]
    except Exception as err:  # keep the night's own error, if there is one
        log.warning("could not tag the night's parent run: %s", mask(str(err))[:300])
        return []


def _data_change(ledger: Ledger, night: str, fingerprint: str) -> str | None:
    """A note when the data differ from the latest earlier night's.

    Data that changed between two tries of the same night are refused: the
    night's trials so far were scored on the old data, and a study mixing the
    two would compare incomparable values.
    """
    nights = ledger.nights()
    tonight = [n.fingerprint for n in nights if n.date == night and n.fingerprint]
    if tonight and tonight[0] != fingerprint:
        raise UserError(
            f"the data changed since night {night} started (fingerprint {tonight[0]} -> "
            f"{fingerprint}): its trials were scored on the old data; restore them, or run "
            "the new data as another night (schedule.date=YYYY-MM-DD)"
        )
    earlier = [n for n in nights if n.date < night and n.fingerprint]
    if not earlier or earlier[-1].fingerprint == fingerprint:
        return None
    last = earlier[-1]
    return f"data changed since night {last.date} (fingerprint {last.fingerprint} -> {fingerprint})"


def _figures(decision: Decision) -> dict[str, float | None]:
    return {
        "challenger_value": decision.challenger_value,
        "champion_value": decision.champion_value,
        "paired_gain_mean": decision.diff_mean,
        "paired_gain_std": decision.diff_std,
        "paired_gain_p": decision.p_value,
        "promoted": float(decision.promoted),
    }


def _publish(ledger: Ledger, base: str, metric: str, night: str, parent: list[str]) -> None:
    """The report of every night so far, on tonight's ledger run and parent run."""
    try:
        page = history.render(ledger.nights(), base, metric, night)
        for run_id in [ledger.run_id, *parent]:
            ledger.client.log_text(str(run_id), page, REPORT)
    except Exception as err:  # the night's outcome is recorded already; the report can wait
        log.warning("could not write the nightly report: %s", mask(str(err))[:300])
