"""The spool: MLflow writes that wait on disk while tracking is away, delivered in order once
it is back, by the running study, the next run or ``hpo.check repair=true`` (issue 11, 2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.check.command import check
from hpo.runner import run
from hpo.runner import trial as trial_module
from hpo.tracking.spool import Spool, is_placeholder, placeholder, spool_folder
from tests.hpo.runner.helpers import PRIOR, load, runs


def never(err: Exception) -> bool:
    return False


def test_writes_are_delivered_in_order_and_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for n in range(3):
        spool.put(("end", f"run-{n}", [("f1", np.float64(0.5), 0)], {}, {}, "FINISHED", None))
    assert len(spool) == 3
    seen: list[tuple[object, ...]] = []
    assert spool.deliver(lambda m: seen.append(m), never) == 3  # type: ignore[func-returns-value]
    assert [m[1] for m in seen] == ["run-0", "run-1", "run-2"]
    assert seen[0][2] == [["f1", 0.5, 0]], "numpy numbers kept as JSON numbers"
    assert len(spool) == 0


def test_a_placeholder_becomes_the_id_of_the_run_its_creation_made(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    held = placeholder()
    assert is_placeholder(held)
    spool.put(("create", held, "0", "trial-0000", {"hpo.trial": "0"}))
    spool.put(("end", held, [], {}, {}, "FINISHED", None))
    ended: list[str] = []

    def apply(message: tuple[object, ...]) -> str | None:
        if message[0] == "create":
            return "real-run-id"
        ended.append(str(message[1]))
        return None

    assert spool.deliver(apply, never) == 2
    assert ended == ["real-run-id"]


def test_a_store_still_away_stops_delivery_and_keeps_the_rest_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for n in range(3):
        spool.put(("kill", f"run-{n}", {}))
    calls: list[str] = []

    def away_after_one(message: tuple[object, ...]) -> None:
        calls.append(str(message[1]))
        if len(calls) > 1:
            raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        spool.deliver(away_after_one, lambda err: True)  # type: ignore[arg-type]
    assert len(spool) == 2
    left: list[str] = []
    spool.deliver(lambda m: left.append(str(m[1])), never)  # type: ignore[func-returns-value]
    assert left == ["run-1", "run-2"]


def test_a_refused_write_is_dropped_so_it_cannot_hold_back_the_others(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put(("kill", "deleted-run", {}))
    spool.put(("kill", "run-1", {}))
    done: list[str] = []

    def refuse_first(message: tuple[object, ...]) -> None:
        if message[1] == "deleted-run":
            raise ValueError("RESOURCE_DOES_NOT_EXIST")
        done.append(str(message[1]))

    assert spool.deliver(refuse_first, never) == 2  # type: ignore[arg-type]
    assert done == ["run-1"] and len(spool) == 0


def test_two_processes_never_deliver_the_same_writes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put(("kill", "run-0", {}))
    with FileLock(str(spool.folder / ".deliver.lock")):  # another process is delivering
        assert spool.deliver(lambda m: None, never) is None
    assert len(spool) == 1


@pytest.fixture
def server() -> Iterator[object]:
    from benchmarks.faults.server import tracking_server

    with tracking_server() as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("delivered_by", ["the next run", "repair"])
def test_a_study_goes_on_while_the_server_is_down_and_its_runs_are_whole_after(
    make_cfg, server, monkeypatch, capfd, caplog, delivered_by
) -> None:
    """The server stops before the third trial: every trial still completes, one line says
    tracking is away; once it is back, the next run delivers every waiting write, and each
    run has its full record (fold series, out-of-fold metrics, fit facts)."""
    cfg = make_cfg(*PRIOR, "study.n_trials=5", f"tracking.uri={server.uri}", "tracking.timeout=3")
    real = trial_module.cross_validate
    calls: list[int] = []

    def server_stops_before_the_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            server.stop()
        return real(*args, **kwargs)

    monkeypatch.setattr(trial_module, "cross_validate", server_stops_before_the_third)
    run(cfg)
    monkeypatch.setattr(trial_module, "cross_validate", real)

    assert [t.state for t in load(cfg).trials] == [TrialState.COMPLETE] * 5
    waiting = Spool(spool_folder(Path("."), cfg.study.name))
    assert len(waiting) > 0
    said = caplog.text + capfd.readouterr().err
    assert said.count("is unreachable") == 1, said  # when it went away
    assert said.count("MLflow is still away: ") == 1, said  # at the end: what waits, and why

    server.start()
    kept = len(waiting)
    if delivered_by == "repair":
        check(cfg, repair=True)
        assert f"delivered {kept} waiting MLflow writes" in capfd.readouterr().out
    else:
        run(cfg)  # the budget is used: it delivers the waiting writes and finishes the study
        assert "is back after" in caplog.text
    assert len(waiting) == 0
    assert check(cfg) == 0, "MLflow agrees with Optuna"
    client = MlflowClient(cfg.tracking.uri)
    _, children = runs(cfg)
    assert len(children) == 5
    trials = load(cfg).trials
    for child in children:
        assert child.info.status == "FINISHED"
        metrics = child.data.metrics
        assert {"roc_auc", "roc_auc_std", "calls", "oof_roc_auc"} <= set(metrics), metrics
        folds = client.get_metric_history(child.info.run_id, "roc_auc_fold")
        folds_run = trials[int(child.data.tags["hpo.trial"])].user_attrs["cv"]["fold_values"]
        assert [m.value for m in folds] == folds_run, "the fold series, each fold once"


def test_a_full_store_database_is_said_in_one_line_without_mlflows_traceback(
    mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, caplog
) -> None:
    """mlflow.db's disk is full: MLflow's SQL store logs each write it cannot commit at
    ERROR with the whole traceback. The write waits in the spool, and our one line is all
    that is said (issue 11: the full-disk-mlflow-store row of benchmarks/faults)."""
    import sqlite3

    import sqlalchemy.exc
    import sqlalchemy.orm

    from hpo.tracking.spool import quiet
    from hpo.tracking.writes import Writes

    client = MlflowClient(mlflow_uri)
    run_id = client.create_run(client.create_experiment(f"full-{tmp_path.name}")).info.run_id
    writes = Writes(mlflow_uri, Spool(tmp_path / "spool"), client)

    def disk_full(self: object) -> None:
        full = sqlite3.OperationalError("database or disk is full")
        raise sqlalchemy.exc.OperationalError("INSERT INTO metrics", {}, full)

    monkeypatch.setattr(sqlalchemy.orm.Session, "commit", disk_full)
    with quiet():  # as the writer process applies every write
        writes.apply(("end", run_id, [("roc_auc", 0.5, 0)], {}, {}, "FINISHED", None))

    assert writes.spool is not None and len(writes.spool) == 1, "the write waits"
    said = caplog.text + capfd.readouterr().err
    assert said.count("is unreachable") == 1, said
    assert "Traceback" not in said and "SQLAlchemy database error" not in said, said
