"""MLflow tracking on MlflowClient: one experiment per study, one parent run, one child per trial.

Nothing here knows about a model family: the runner hands over plain numbers
(hpo/tracking/records.py), and the refit model is logged by models.py.
Every trial costs three writes: create_run (tags), log_batch (params,
metrics, final tags) and set_terminated; writer.py makes the last two in a
process of their own. Study-level writes (parent run, plots) are rare and
made directly, by parent_run.py.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from hpo.cli import look_command
from hpo.config import TrackingConfig
from hpo.names import (
    FAIL_REASON_TAG,
    HOST_TAG,
    PID_TAG,
    RUN_NAME_TAG,
    SAMPLER_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from hpo.secrets import mask
from hpo.storages import init_lock
from hpo.tracking.parent_run import ParentRun
from hpo.tracking.records import TrialRecord, thinned
from hpo.tracking.relocate import relocate
from hpo.tracking.spool import Spool, placeholder, quiet, spool_folder
from hpo.tracking.store import bound_calls, check_server, default_artifacts, is_server, write_ahead
from hpo.tracking.writer import ProcessWriter, make_writer
from hpo.tracking.writes import Writes, unreachable

log = logging.getLogger("hpo.tracking")

# Against a tracking server MLflow prints "View run ... at: URL" to stdout on every
# set_terminated (after one more get_run): noise in the results, and a request per trial.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class Tracker(ParentRun):
    """Writes a study's runs to one MLflow experiment named after the study."""

    def __init__(
        self,
        cfg: TrackingConfig,
        study_name: str,
        sampler: str,
        writer: ProcessWriter | None = None,
    ) -> None:
        """``writer``: the study's writer process if already started (``early_writer``)."""
        self.uri = cfg.uri
        bound_calls(cfg.timeout)
        check_server(cfg.uri)
        with init_lock(cfg.uri, "mlflow-schema"):  # opening the store creates its tables
            write_ahead(cfg.uri)
            self.client = MlflowClient(tracking_uri=cfg.uri)
            relocate(cfg.uri, keep=cfg.artifact_location)  # the study folder moved or copied
        self.study_name = study_name
        self.sampler = sampler
        self.experiment_id = self._experiment(cfg.artifact_location)
        self.parent_id: str | None = None
        self.spool = spool_folder(Path(cfg.spool).resolve(), study_name)
        # This process's own writes (runs created, dead workers' runs closed) wait in the
        # same spool as the writer process's; the last run's waiting writes go first.
        self.writes = Writes(cfg.uri, Spool(self.spool), self.client)
        self.catch_up()
        self.writer = writer or make_writer(cfg.uri, cfg.writer, self.spool)
        self.curve_points = cfg.curve_points
        self.told_waiting = False
        self.unfinished = False  # the end of the study could not be logged

    def catch_up(self) -> bool:
        """Deliver the writes that wait in the spool, if the store takes them now."""
        with quiet():
            return self.writes.caught_up(now=True)

    def _experiment(self, artifact_location: str | None) -> str:
        found = self.client.get_experiment_by_name(self.study_name)
        if found is not None:
            return str(found.experiment_id)
        location = artifact_location or default_artifacts(self.uri)
        try:
            return str(
                self.client.create_experiment(
                    self.study_name, artifact_location=location and f"{location}/{self.study_name}"
                )
            )
        except MlflowException:  # another worker created it first
            again = self.client.get_experiment_by_name(self.study_name)
            if again is None:
                raise
            return str(again.experiment_id)

    def start_trial(self, number: int) -> str:
        """Open the trial's child run now, so a running trial is visible in the UI."""
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_id or "",
            STUDY_TAG: self.study_name,
            TRIAL_TAG: str(number),
            STATE_TAG: "RUNNING",
            SAMPLER_TAG: self.sampler,
            HOST_TAG: socket.gethostname(),
            PID_TAG: str(os.getpid()),
        }
        run_id = self._create(f"trial-{number:04d}", tags)
        self.writer.send(("open", run_id))
        return run_id

    def _create(self, name: str, tags: dict[str, str]) -> str:
        """The new run's id; a placeholder while tracking is away (created once it is back)."""
        away: Exception = RuntimeError("still unreachable")
        with quiet():
            if self.writes.caught_up():
                try:
                    run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
                    return str(run.info.run_id)
                except Exception as err:
                    if not unreachable(err):
                        raise
                    away = err
        held = placeholder()
        self.writes.wait(("create", held, self.experiment_id, name, tags), away)
        return held

    def end_trial(self, run_id: str, record: TrialRecord) -> None:
        """Log everything about the trial in one batch, then close the run with its state."""
        metrics = [(k, float(v), 0) for k, v in record.metrics.items()]
        metrics += [
            (k, float(v), step)
            for k, values in record.series.items()
            for step, v in enumerate(values)
        ]
        metrics += [
            (k, float(values[step]), step)
            for k, values in record.curves.items()
            for step in thinned(len(values), self.curve_points)
        ]
        params = {k: str(v) for k, v in record.params.items()}
        tags = {k: mask(str(v)) for k, v in {STATE_TAG: record.state, **record.tags}.items()}
        if record.state == "PRUNED":  # told apart from complete trials at a glance
            tags[RUN_NAME_TAG] = f"trial-{record.number:04d}-pruned"
        status = "FAILED" if record.state == "FAIL" else "FINISHED"
        self.writer.send(("end", run_id, metrics, params, tags, status, record.oof))

    def kill_trial(self, run_id: str, reason: str, params: Mapping[str, object]) -> None:
        """Close an interrupted trial's run as KILLED with the parameters it was trying,
        so no run stays RUNNING and the run says what was cut short."""
        self.writer.send(_kill(run_id, reason, params))

    def kill_run(self, run_id: str, reason: str, params: Mapping[str, object]) -> None:
        """Close the run of a trial another (dead) process left open."""
        with quiet():
            self.writes.apply(_kill(run_id, reason, params))

    def flush(self, prompt: bool = False) -> None:
        """Wait until every trial write has reached MLflow (drains the writer process),
        or waits in the spool, which is then said once.

        ``prompt``: the study was interrupted; do not wait long for the writer.
        """
        self.writer.close(prompt)
        if not prompt:
            self.catch_up()
        waiting = len(self.writes.spool) if self.writes.spool is not None else 0
        if (waiting or self.unfinished) and not self.told_waiting:
            self.told_waiting = True
            missing = [f"{waiting} writes wait in {self.spool}"] if waiting else []
            if self.unfinished:
                missing.append("the summary, plots and model are not on the study's parent run")
            log.warning(
                "MLflow is still away: %s; run the same command once tracking is back%s",
                ", and ".join(missing),
                " (or python -m hpo.check repair=true for the trials' runs)" if waiting else "",
            )

    def study_unfinished(self, err: Exception) -> None:
        """The end of the study could not be logged (tracking away): said at the last flush."""
        self.unfinished = True
        if self.writes.away is not None:
            self.writes.away.gone(err)

    def ui_command(self, metric: str, direction: str) -> str:
        """How to look at the study: the runs table's URL on a tracking server, else the
        command that starts MLflow's UI on the local store (hpo/ui) and prints that URL."""
        if is_server(self.uri):
            from hpo.ui.target import Experiment, runs_url

            shown = Experiment(self.experiment_id, metric, direction, view=True)
            return f"open {runs_url(self.uri, shown)}"
        return look_command(sys.argv[1:])


def _kill(run_id: str, reason: str, params: Mapping[str, object]) -> tuple[object, ...]:
    tags = {STATE_TAG: "KILLED", FAIL_REASON_TAG: mask(reason)}
    return ("kill", run_id, tags, {k: str(v) for k, v in params.items()})
