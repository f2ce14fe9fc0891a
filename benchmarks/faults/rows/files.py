"""Rows on the journal file: a torn tail, garbage, a full disk."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from benchmarks.faults.rows.base import (
    Skipped,
    Staged,
    before,
    evidence,
    file_scene,
    row,
)


@row("torn-tail")
def torn_tail(root: Path, budget: int = 6) -> Staged:
    """Half a record at the end of the journal (a crash mid-append), then the next run."""
    with file_scene(root, budget, sleep=0.0) as s:
        s.wait_all(s.start(1, f"study.n_trials={budget // 2}"))
        kept = before(s)
        journal = root / "optuna.journal"
        last = journal.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        with journal.open("ab") as f:
            f.write(last[: len(last) // 2])
        s.start(1)
        found = evidence(s, before=kept)
        side = [p.name for p in root.glob("optuna.journal.torn-*")]
        yield f"half a record ({len(last) // 2} bytes) appended; set aside: {len(side)}", found


@row("garbage")
def garbage(root: Path, budget: int = 6) -> Staged:
    """A line that is no record: one error line naming the byte, the file untouched; with the
    line cut out, the same command finishes the study."""
    with file_scene(root, budget, sleep=0.0) as s:
        s.wait_all(s.start(1, f"study.n_trials={budget // 2}"))
        kept = before(s)
        journal = root / "optuna.journal"
        clean = journal.read_bytes()
        damaged = clean + b"this is not a journal record\n"
        journal.write_bytes(damaged)
        (refused,) = s.wait_all(s.start(1, label="damaged", expected=(2,), user_fault=True))
        changed = journal.read_bytes() != damaged
        journal.write_bytes(clean)  # the user cuts the line out
        s.start(1, label="mended")
        found = evidence(s, before=kept)
        found.ended.insert(0, refused)
        found.more["e"] = ["the damaged journal was changed"] if changed else []
        if f"byte {len(clean)}" not in refused.stderr:
            found.more["f"] = [f"the error line does not name byte {len(clean)}"]
        yield "a garbage line appended; cut out after the refusal", found


@row("full-disk")
def full_disk(root: Path, budget: int = 60) -> Staged:
    """The journal on a tmpfs with 24 KiB left: one line and the summary; once space is
    freed, the same command resumes with every trial kept. The disk holds 1 MiB once freed:
    room for the budget, however much a trial's records take (4-5 KiB each here)."""
    with tmpfs(root / "disk", "1m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 24 * 1024))
        with file_scene(root, budget, sleep=0.0, url=f"journal:{disk / 'optuna.journal'}") as s:
            (full,) = s.wait_all(s.start(1, label="full", expected=(1,), user_fault=True))
            filler.unlink()  # before reading: opening the journal may set a torn tail aside
            kept = before(s)
            s.start(1, label="freed")
            found = evidence(s, before=kept)
            found.ended.insert(0, full)
            yield f"ENOSPC after {len(kept.trials)} trials (24 KiB free), then space freed", found


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (root only), unmounted on the way out."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = mounted.stderr.strip() or f"mount exited {mounted.returncode}"
        raise Skipped(f"skipped: cannot mount tmpfs ({reason})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
