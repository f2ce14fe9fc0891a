"""The ledger of nights: one MLflow run per night in the experiment ``<study>-nightly``.

A night's own experiment (``<study>-<date>``) only exists once its study
started; the ledger also keeps the nights that failed before that (a missing
data file, an unreachable database), and is what the nightly report and the
data-fingerprint comparison read. In the MLflow UI its runs chart the best
value night by night.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow.entities import Metric, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo.names import (
    CHAMPION_PREFIX,
    DATA_CHANGED_TAG,
    FINGERPRINT_TAG,
    NIGHTLY_ATTEMPTS_TAG,
    NIGHTLY_DATE_TAG,
    NIGHTLY_ERROR_TAG,
    NIGHTLY_HOLDER_TAG,
    NIGHTLY_STUDY_TAG,
    ROLE_NIGHT,
    ROLE_TAG,
)
from hpo.schedule.lock import holder
from hpo.secrets import mask


@dataclass
class Night:
    """One night as the ledger recorded it."""

    date: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED (MLflow's run status)
    study: str
    run_id: str
    best_value: float | None = None
    decision: str | None = None  # first, promoted, kept
    champion_value: float | None = None  # the champion re-scored on that night's folds
    fingerprint: str | None = None
    error: str | None = None
    note: str | None = None  # e.g. the data changed

    @classmethod
    def from_run(cls, run: Run) -> Night:
        tags, metrics = run.data.tags, run.data.metrics
        return cls(
            date=tags[NIGHTLY_DATE_TAG],
            status=run.info.status,
            study=tags.get(NIGHTLY_STUDY_TAG, ""),
            run_id=run.info.run_id,
            best_value=metrics.get("best_value"),
            decision=tags.get(CHAMPION_PREFIX + "decision"),
            champion_value=metrics.get("champion_value"),
            fingerprint=tags.get(FINGERPRINT_TAG),
            error=tags.get(NIGHTLY_ERROR_TAG),
            note=tags.get(DATA_CHANGED_TAG),
        )


class Ledger:
    def __init__(self, client: MlflowClient, study: str, artifact_location: str | None) -> None:
        self.client = client
        self.name = f"{study}-nightly"
        self.experiment_id = self._experiment(artifact_location)
        self.run_id: str | None = None

    def _experiment(self, artifact_location: str | None) -> str:
        found = self.client.get_experiment_by_name(self.name)
        if found is not None:
            return str(found.experiment_id)
        location = artifact_location and f"{artifact_location}/{self.name}"
        try:
            return str(self.client.create_experiment(self.name, artifact_location=location))
        except MlflowException:  # created meanwhile (another study's night: a different name)
            again = self.client.get_experiment_by_name(self.name)
            if again is None:
                raise
            return str(again.experiment_id)

    def open(self, night: str, study_name: str) -> str:
        """The night's run, RUNNING again if this is a rerun of the same night."""
        existing = self._runs(f"tags.`{NIGHTLY_DATE_TAG}` = '{night}'")
        tags = {NIGHTLY_HOLDER_TAG: holder()}
        if existing:
            self.run_id = existing[0].info.run_id
            attempts = int(existing[0].data.tags.get(NIGHTLY_ATTEMPTS_TAG, "1")) + 1
            self.client.update_run(self.run_id, status="RUNNING")
            if NIGHTLY_ERROR_TAG in existing[0].data.tags:
                self.client.delete_tag(self.run_id, NIGHTLY_ERROR_TAG)
            self.record({**tags, NIGHTLY_ATTEMPTS_TAG: str(attempts)})
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=night,
                tags={
                    NIGHTLY_DATE_TAG: night,
                    NIGHTLY_STUDY_TAG: study_name,
                    ROLE_TAG: ROLE_NIGHT,
                    NIGHTLY_ATTEMPTS_TAG: "1",
                    **tags,
                },
            )
            self.run_id = run.info.run_id
        return self.run_id

    def record(
        self, tags: Mapping[str, str], metrics: Mapping[str, float | None] | None = None
    ) -> None:
        assert self.run_id is not None
        self.client.log_batch(
            self.run_id,
            metrics=[
                Metric(k, float(v), 0, 0)
                for k, v in (metrics or {}).items()
                if v is not None and math.isfinite(v)
            ],
            tags=[RunTag(k, mask(str(v))[:5000]) for k, v in tags.items()],
        )

    def close(self, status: str = "FINISHED", error: str | None = None) -> None:
        assert self.run_id is not None
        if error:
            self.record({NIGHTLY_ERROR_TAG: error})
        self.client.set_terminated(self.run_id, status=status)

    def nights(self) -> list[Night]:
        """Every night recorded, oldest first."""
        return sorted(
            (Night.from_run(r) for r in self._runs(None) if NIGHTLY_DATE_TAG in r.data.tags),
            key=lambda n: n.date,
        )

    def _runs(self, where: str | None) -> list[Run]:
        found = self.client.search_runs([self.experiment_id], where or "", max_results=5000)
        return list(found)
