"""The study's parent run: its writes hold when workers finish the study together."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hpo.config import TrackingConfig
from hpo.tracking.tracker import Tracker


def test_a_tag_another_process_inserted_first_is_set_again_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers finishing together: MLflow's SQL store reads, then inserts an experiment tag,
    and the second insert of the same key fails on the unique key (seen in the pg-kills
    row of benchmarks/faults: a worker died with a traceback at the study's end)."""
    from mlflow.exceptions import MlflowException

    from hpo.names import NOTE_TAG, VIEW_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(TrackingConfig(uri=uri, writer="inline", spool=str(tmp_path)), "race", "tpe")
    parent = tracker.open_parent(None, {})
    real = MlflowClient.set_experiment_tag
    lost: list[str] = []

    def first_insert_loses(self: MlflowClient, experiment_id: str, key: str, value: str) -> None:
        if key not in lost:
            lost.append(key)
            real(self, experiment_id, key, "the other process's")  # it got there first
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: key")
        real(self, experiment_id, key, value)

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", first_insert_loses)
    tracker.describe_study("**race**: described", '{"orderByKey": "metrics.`f1`"}')
    client = MlflowClient(uri)
    experiment = client.get_experiment(tracker.experiment_id)
    assert experiment.tags[NOTE_TAG] == "**race**: described"
    assert experiment.tags[VIEW_TAG] == '{"orderByKey": "metrics.`f1`"}'
    assert client.get_run(parent).data.tags[NOTE_TAG] == "**race**: described"
    assert lost == [NOTE_TAG, VIEW_TAG]
