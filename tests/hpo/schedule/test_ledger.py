"""Ledger: one MLflow run per night in the experiment ``<study>-nightly``, rerun nights reused."""

from __future__ import annotations

import uuid

import pytest
from mlflow.tracking import MlflowClient

from hpo.schedule.ledger import Ledger, Night
from hpo.schedule.lock import holder


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """One SQLite store for the module: creating its tables costs seconds."""
    return MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('ledger')}/mlflow.db")


@pytest.fixture
def base() -> str:
    return f"base-{uuid.uuid4().hex[:8]}"


def ledger_runs(client: MlflowClient, base: str):
    experiment = client.get_experiment_by_name(f"{base}-nightly")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id])


def test_opening_a_night_creates_one_ledger_run(client, base) -> None:
    ledger = Ledger(client, base, None)
    run_id = ledger.open("2024-05-01", f"{base}-2024-05-01")
    [run] = ledger_runs(client, base)
    assert run.info.run_id == run_id == ledger.run_id
    assert run.info.run_name == "2024-05-01"
    assert run.info.status == "RUNNING"
    assert run.info.experiment_id == ledger.experiment_id
    tags = run.data.tags
    assert tags["hpo.nightly.date"] == "2024-05-01"
    assert tags["hpo.nightly.study"] == f"{base}-2024-05-01"
    assert tags["hpo.nightly.attempts"] == "1"
    assert tags["hpo.role"] == "night"
    assert tags["hpo.nightly.holder"] == holder()


def test_reopening_a_night_reuses_its_run_and_counts_the_attempt(client, base) -> None:
    first = Ledger(client, base, None)
    run_id = first.open("2024-05-01", base)
    first.close("FAILED", error="data file missing")
    again = Ledger(client, base, None)  # the rerun: a new process, the same experiment
    assert again.experiment_id == first.experiment_id
    assert again.open("2024-05-01", base) == run_id
    [run] = ledger_runs(client, base)
    assert run.info.status == "RUNNING"
    assert run.data.tags["hpo.nightly.attempts"] == "2"
    assert "hpo.nightly.error" not in run.data.tags, "last attempt's error cleared"
    again.close()
    assert Ledger(client, base, None).open("2024-05-01", base) == run_id
    assert client.get_run(run_id).data.tags["hpo.nightly.attempts"] == "3"


def test_another_night_gets_its_own_run(client, base) -> None:
    ledger = Ledger(client, base, None)
    one = ledger.open("2024-05-01", base)
    ledger.close()
    two = ledger.open("2024-05-02", base)
    assert one != two
    assert len(ledger_runs(client, base)) == 2
    assert client.get_run(two).data.tags["hpo.nightly.attempts"] == "1"


def test_record_sets_tags_and_finite_metrics_with_passwords_masked(client, base) -> None:
    ledger = Ledger(client, base, None)
    run_id = ledger.open("2024-05-01", base)
    ledger.record(
        {
            "hpo.champion.decision": "promoted",
            "hpo.storage": "postgresql://hpo:s3cret@db:5432/hpo",
            "long": "x" * 6000,
        },
        {"best_value": 0.93, "champion_value": None, "nan": float("nan"), "inf": float("inf")},
    )
    data = client.get_run(run_id).data
    assert data.metrics == {"best_value": 0.93}, "None, NaN and inf are not logged"
    assert data.tags["hpo.champion.decision"] == "promoted"
    assert data.tags["hpo.storage"] == "postgresql://hpo:***@db:5432/hpo"
    assert data.tags["long"] == "x" * 5000


def test_close_sets_the_status_and_the_error(client, base) -> None:
    ledger = Ledger(client, base, None)
    run_id = ledger.open("2024-05-01", base)
    ledger.close("FAILED", error="cannot reach postgresql://u:pw@host/db")
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None
    assert run.data.tags["hpo.nightly.error"] == "cannot reach postgresql://u:***@host/db"


def test_close_without_an_error_finishes_the_run(client, base) -> None:
    ledger = Ledger(client, base, None)
    run_id = ledger.open("2024-05-01", base)
    ledger.close()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "hpo.nightly.error" not in run.data.tags


def test_nights_reads_every_night_back_oldest_first(client, base) -> None:
    ledger = Ledger(client, base, None)
    for night in ("2024-05-03", "2024-05-01", "2024-05-02"):
        ledger.open(night, f"{base}-{night}")
        if night == "2024-05-02":
            ledger.close("FAILED", error="boom")
            continue
        ledger.record(
            {
                "hpo.champion.decision": "kept",
                "hpo.data_fingerprint": f"fp-{night}",
                "hpo.data_changed": "rows",
            },
            {"best_value": 0.5, "champion_value": 0.4},
        )
        ledger.close()
    client.create_run(ledger.experiment_id, tags={"other": "no date"})  # not a night: skipped
    nights = ledger.nights()
    assert [n.date for n in nights] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    first, failed, _ = nights
    assert first == Night(
        date="2024-05-01",
        status="FINISHED",
        study=f"{base}-2024-05-01",
        run_id=first.run_id,
        best_value=0.5,
        decision="kept",
        champion_value=0.4,
        fingerprint="fp-2024-05-01",
        note="rows",
    )
    assert (failed.status, failed.error, failed.best_value, failed.decision) == (
        "FAILED",
        "boom",
        None,
        None,
    )


def test_a_new_ledger_has_no_nights(client, base) -> None:
    assert Ledger(client, base, None).nights() == []


def test_the_experiment_is_placed_under_the_artifact_location(client, base, tmp_path) -> None:
    ledger = Ledger(client, base, str(tmp_path))
    experiment = client.get_experiment(ledger.experiment_id)
    assert experiment.name == f"{base}-nightly"
    assert experiment.artifact_location.endswith(f"{tmp_path}/{base}-nightly")
