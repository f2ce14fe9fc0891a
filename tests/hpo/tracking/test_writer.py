"""The MLflow writer process: nothing queued is lost when it dies or cannot be waited for."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from hpo.tracking import writer as writer_module
from hpo.tracking.writer import ProcessWriter


def open_runs(uri: str, n: int) -> list[str]:
    client = MlflowClient(uri)
    experiment = client.create_experiment("writer")
    return [client.create_run(experiment).info.run_id for _ in range(n)]


def end(run_id: str, value: float) -> tuple:
    return (
        "end",
        run_id,
        [("score", value, 0)],
        {"x": "1"},
        {"hpo.state": "COMPLETE"},
        "FINISHED",
        None,
    )


def test_a_dead_writer_is_replaced_by_writes_in_the_study_process(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first, second = open_runs(uri, 2)
    writer = ProcessWriter(uri)
    writer.process.kill()
    writer.process.join()
    for run_id, value in ((first, 0.5), (second, 0.7)):
        writer.send(("open", run_id))
        writer.send(end(run_id, value))
    writer.close()

    client = MlflowClient(uri)
    for run_id, value in ((first, 0.5), (second, 0.7)):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["score"] == value


def test_an_interrupted_study_does_not_wait_for_a_stuck_writer(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(writer_module, "PROMPT_SECONDS", 1.0)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done, killed = open_runs(uri, 2)
    writer = ProcessWriter(uri)
    os.kill(writer.process.pid, signal.SIGSTOP)  # a writer still importing, or far behind
    writer.send(("open", done))
    writer.send(end(done, 0.9))
    writer.send(("open", killed))  # a trial that was running when SIGTERM came
    started = time.monotonic()
    writer.close(prompt=True)
    assert time.monotonic() - started < 30

    client = MlflowClient(uri)
    assert client.get_run(done).info.status == "FINISHED"
    assert client.get_run(done).data.metrics["score"] == 0.9
    assert client.get_run(killed).info.status == "KILLED"
    assert not writer.process.is_alive()


def test_writes_the_writer_applied_are_not_applied_twice(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (run_id,) = open_runs(uri, 1)
    writer = ProcessWriter(uri)
    writer.send(("open", run_id))
    writer.send(end(run_id, 0.25))
    deadline = time.monotonic() + 120
    while writer.applied.value < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writer.applied.value == 2
    writer.process.kill()  # dies after applying both
    writer.process.join()
    writer.close()
    history = MlflowClient(uri).get_metric_history(run_id, "score")
    assert [m.value for m in history] == [0.25]


def test_ctrl_c_reaches_the_writer_but_the_study_process_ends_it(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the whole process group: the writer ignores it (no
    KeyboardInterrupt traceback of its own) and still drains when the study closes it."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (run_id,) = open_runs(uri, 1)
    writer = ProcessWriter(uri)
    os.kill(writer.process.pid, signal.SIGINT)  # at once: the writer is still importing
    writer.send(("open", run_id))
    writer.send(end(run_id, 0.5))
    writer.close()

    assert writer.process.exitcode == 0, "it ran to the end of its queue"
    assert MlflowClient(uri).get_run(run_id).data.metrics["score"] == 0.5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "ours is untouched"


def test_a_killed_trials_run_keeps_the_parameters_it_was_trying(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (run_id,) = open_runs(uri, 1)
    writer = writer_module.InlineWriter(uri)
    writer.send(("kill", run_id, {"hpo.state": "KILLED"}, {"x": "0.25"}))

    run = MlflowClient(uri).get_run(run_id)
    assert (run.info.status, run.data.params) == ("KILLED", {"x": "0.25"})
