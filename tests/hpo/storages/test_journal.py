"""Optuna's journal file: where it lives, its file locks, the path Optuna's tools take, and
a torn tail or garbage in it (a crash, a full disk, a stray write)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from hpo.config import StorageConfig
from hpo.errors import UserError
from hpo.storages import open_storage, optuna_url, study_lock
from hpo.storages.night import AlreadyRunning
from hpo.storages.registry import backend_for
from tests.hpo.storages.helpers import REPO


def test_the_journal_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "optuna.journal"
    optuna.create_study(study_name="s", storage=open_storage(StorageConfig(url=f"journal:{path}")))
    assert path.is_file()
    assert optuna_url(f"journal://{path}") == str(path)


def test_the_study_lock_is_a_file_beside_the_journal(tmp_path: Path) -> None:
    storage = open_storage(StorageConfig(url=f"journal:{tmp_path / 'j'}"))
    with study_lock(storage, "study/1"):
        assert (tmp_path / "j.study_1.lock").exists()


def test_a_second_night_lock_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    backend = backend_for(f"journal:{tmp_path / 'j'}")
    with backend.night_lock("s", "2024-06-01"):
        refused = pytest.raises(AlreadyRunning, match=r"already running \(night 2024-06-01, ")
        with refused, backend.night_lock("s", "2024-06-01"):
            pass
        with backend.night_lock("other", "2024-06-01"):
            pass
    assert not (tmp_path / "j.nightly-s.json").exists(), "who held it is gone with the lock"


# A crash or a full disk in the middle of an append: the first half of a record.
TORN = b'{"op_code":4,"worker_id":"0f3c-1","study_id":0,"datetime_sta'


def _journal(tmp_path: Path, trials: int = 3) -> Path:
    """A journal file holding study "s" with ``trials`` finished trials."""
    path = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="s", storage=_open(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=trials)
    return path


def _open(path: Path) -> BaseStorage:
    return open_storage(StorageConfig(url=f"journal:{path}"))


def _trials(storage: BaseStorage) -> list[tuple[int, float | None, dict[str, object]]]:
    study = optuna.load_study(study_name="s", storage=storage)
    return [(t.number, t.value, t.params) for t in study.get_trials(states=(TrialState.COMPLETE,))]


def _optuna_alone(path: Path) -> BaseStorage:
    """The journal as Optuna's own tools open it (``optuna``, optuna-dashboard)."""
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_torn_last_line_is_set_aside_and_no_trial_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _journal(tmp_path)
    before = _trials(_open(path))
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(TORN)
    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        storage = _open(path)
    optuna.load_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    after = _trials(_optuna_alone(path))  # a fresh read of the file, by Optuna alone
    assert after[:3] == before and len(after) == 5
    assert path.read_bytes().startswith(whole)
    (side,) = tmp_path.glob("optuna.journal.torn-*")
    assert side.read_bytes() == TORN
    (warning,) = _warnings(caplog)
    assert str(side) in warning and f"{len(TORN)} bytes" in warning


def test_a_line_torn_while_another_process_runs_is_set_aside_before_its_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _journal(tmp_path)
    study = optuna.load_study(study_name="s", storage=_open(path))
    with path.open("ab") as f:
        f.write(TORN)  # a second worker dies mid-append (or the disk fills up)
    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(_trials(_optuna_alone(path))) == 5
    (side,) = tmp_path.glob("optuna.journal.torn-*")
    assert side.read_bytes() == TORN
    assert len(_warnings(caplog)) == 1


def test_processes_opening_a_torn_journal_together_set_it_aside_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _journal(tmp_path)
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(TORN)
    # The lock is a file (O_EXCL), so threads contend for it just as processes do.
    with caplog.at_level(logging.WARNING, logger="hpo.storages"), ThreadPoolExecutor(4) as pool:
        opened = list(pool.map(lambda _: _open(path), range(4)))
    assert all(len(_trials(storage)) == 3 for storage in opened)
    assert path.read_bytes() == whole
    assert len(list(tmp_path.glob("optuna.journal.torn-*"))) == 1 and len(_warnings(caplog)) == 1


def test_a_whole_last_record_without_its_newline_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _journal(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole.removesuffix(b"\n"))  # the last trial's "COMPLETE", unterminated
    with caplog.at_level(logging.WARNING, logger="hpo.storages"):
        storage = _open(path)
    assert path.read_bytes() == whole
    assert len(_trials(storage)) == 3
    assert not list(tmp_path.glob("*.torn-*")) and not _warnings(caplog)


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        pytest.param(lambda lines: [*lines[:2], b"garbage\n", *lines[2:]], 3, id="middle"),
        pytest.param(lambda lines: [*lines[:4], b'{"hello": 1}\n', *lines[4:]], 5, id="json"),
        pytest.param(lambda lines: [*lines, b"not json\n"], None, id="last"),
        pytest.param(lambda lines: [*lines, b"42"], None, id="unterminated"),
        pytest.param(lambda lines: [*lines[:2], b"x\n", *lines[2:], TORN], 3, id="before-torn"),
    ],
)
def test_garbage_is_one_user_error_naming_the_byte_and_the_file_is_unchanged(
    tmp_path: Path, damage: Callable[[list[bytes]], list[bytes]], line: int | None
) -> None:
    path = _journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = damage(lines)
    line = line or len(damaged)
    offset = sum(len(one) for one in damaged[: line - 1])
    path.write_bytes(b"".join(damaged))
    with pytest.raises(UserError) as raised:
        _open(path)
    message = str(raised.value)
    assert f"{path} is damaged at line {line} (byte {offset})" in message
    assert "backup" in message and "\n" not in message
    assert path.read_bytes() == b"".join(damaged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.journal"]


@pytest.mark.parametrize("command", ["hpo", "hpo.check"])
def test_the_command_line_on_a_garbage_journal_prints_one_error_line_and_exits_2(
    tmp_path: Path, command: str
) -> None:
    path = _journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = b"".join([*lines[:2], b"garbage\n", *lines[2:]])
    path.write_bytes(damaged)
    done = subprocess.run(
        [sys.executable, "-m", command, f"storage.url=journal:{path}", "study.name=s"]
        + (["tracking.enabled=false", "progress=false"] if command == "hpo" else []),
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines_out = done.stderr.strip().splitlines()
    assert len(lines_out) == 1, done.stderr
    offset = sum(len(one) for one in lines[:2])
    assert lines_out[0].startswith(
        f"error: the journal {path} is damaged at line 3 (byte {offset})"
    )
    assert path.read_bytes() == damaged


def test_workers_and_optuna_dashboard_take_the_same_journal_lock(tmp_path: Path) -> None:
    """optuna-dashboard (notes, its writes) locks the journal with Optuna's symlink lock, hpo
    with its open lock: two classes, one file (PATH.lock, created exclusively), so each
    waits for the other and no append of one interleaves with the other's."""
    import threading

    from optuna_dashboard._storage_url import get_journal_file_storage

    from hpo.storages.journal import MendingLock

    path = tmp_path / "optuna.journal"
    optuna.create_study(study_name="s", storage=open_storage(StorageConfig(url=f"journal:{path}")))
    dashboard = get_journal_file_storage(str(path))._backend._lock  # what the dashboard uses
    worker = MendingLock(str(path))
    for holder, waiter in ((worker, dashboard), (dashboard, worker)):
        holder.acquire()
        taken = threading.Event()
        thread = threading.Thread(target=lambda w=waiter, t=taken: (w.acquire(), t.set()))
        thread.start()
        assert not taken.wait(0.5), f"{type(waiter).__name__} got the lock while it was held"
        holder.release()
        thread.join(timeout=60)
        assert taken.is_set(), f"{type(waiter).__name__} got the lock once it was free"
        waiter.release()


def test_the_journal_syncs_at_state_changes_and_every_record_is_read_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's parameters and attributes are in the file as soon as they are set (another
    process reads them), and reach the disk with the trial's next state change: one sync
    for the trial's creation and one for its end, not one per record."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    url = f"journal:{tmp_path / 'optuna.journal'}"
    study = optuna.create_study(study_name="s", storage=open_storage(StorageConfig(url=url)))
    trial = study.ask()
    before = len(synced)
    for i in range(5):
        trial.suggest_float(f"x{i}", 0.0, 1.0)
    trial.set_user_attr("run", "abc")
    assert len(synced) == before  # no sync per record
    reader = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    seen = reader.get_all_trials(reader.get_study_id_from_name("s"))[0]
    assert len(seen.params) == 5 and seen.user_attrs == {"run": "abc"}
    study.tell(trial, 0.5)
    assert len(synced) == before + 1  # the end of the trial syncs it, records before it too
