"""The study's one MLflow parent run: opened or reused, then the study's results on it.

Every worker opens it under the study lock, so a study has exactly one however
many workers join it or however often it is resumed; at the end of the study
its summary, best parameters, description and final status are written on it.
These writes are rare and made directly on the client, not through the writer
process that carries the trials' writes (hpo/tracking/writer.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from hpo.names import NOTE_TAG, PARAMS_TRIAL_TAG, ROLE_STUDY, ROLE_TAG, STUDY_TAG, VIEW_TAG
from hpo.secrets import mask
from hpo.tracking.store import lost_race

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("hpo.tracking")


class ParentRun:
    """What ``Tracker`` (hpo/tracking/tracker.py) writes on the parent run; it sets these."""

    client: MlflowClient
    experiment_id: str
    study_name: str
    parent_id: str | None

    def open_parent(self, existing_id: str | None, tags: Mapping[str, str]) -> str:
        """Reuse the study's parent run if it exists, else create it. Call under the study lock."""
        if existing_id and self._exists(existing_id):
            self.client.update_run(existing_id, status="RUNNING")
            self.parent_id = existing_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study_name,
                tags={STUDY_TAG: self.study_name, ROLE_TAG: ROLE_STUDY, **tags},
            )
            self.parent_id = run.info.run_id
        return self.parent_id

    def _exists(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        return run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active"

    def log_study(
        self,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        texts: Iterable[tuple[str, str]],
    ) -> None:
        """Summary numbers, tags and text artifacts (config, plots) on the parent run."""
        assert self.parent_id is not None
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, mask(str(v))) for k, v in tags.items()],
        )
        for path, text in texts:
            self.client.log_text(self.parent_id, mask(text), path)

    def log_best_params(self, trial: int, params: Mapping[str, object]) -> None:
        """The best trial's parameters as the parent run's params, for the runs table, the
        compare view and searches (``params.max_depth > 3``).

        MLflow params never change once logged: a study resumed to a new best keeps the
        first best's, and PARAMS_TRIAL_TAG says whose they are (``best.*`` tags and the
        description always hold the current best's).
        """
        assert self.parent_id is not None
        if self.client.get_run(self.parent_id).data.params:
            return
        try:
            self.client.log_batch(
                self.parent_id,
                params=[Param(k, mask(str(v))) for k, v in params.items()],
                tags=[RunTag(PARAMS_TRIAL_TAG, str(trial))],
            )
        except MlflowException:  # another process logged another best's at the same moment
            log.debug("the parent run's params were logged by another process")

    def describe_study(self, note: str, view: str) -> None:
        """The markdown ``note`` on the parent run and the experiment, and the runs-table
        ``view`` (hpo/runner/described.py) on the experiment."""
        assert self.parent_id is not None
        # log_batch, not set_tag: MLflow's SQL store retries a tag another process inserted
        # at the same moment (workers finishing together) in a batch, not in set_tag
        self.client.log_batch(self.parent_id, tags=[RunTag(NOTE_TAG, mask(note))])
        self._experiment_tag(NOTE_TAG, mask(note))
        self._experiment_tag(VIEW_TAG, view)

    def _experiment_tag(self, key: str, value: str, tries: int = 3) -> None:
        """set_experiment_tag, again when another process inserted the same tag between
        MLflow's read and its insert (a unique-key error; the next try updates it)."""
        for attempt in range(tries):
            try:
                self.client.set_experiment_tag(self.experiment_id, key, value)
                return
            except MlflowException as err:
                if attempt == tries - 1 or not lost_race(err):
                    raise

    def close_study(self, status: str = "FINISHED") -> None:
        if self.parent_id:
            self.client.set_terminated(self.parent_id, status=status)

    def parent_tag(self, key: str) -> str | None:
        assert self.parent_id is not None
        return self.client.get_run(self.parent_id).data.tags.get(key)
