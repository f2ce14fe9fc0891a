"""``python -m benchmarks.faults``: the fault matrix, one row per fault, a column per invariant.

    python -m benchmarks.faults                       # every row (about 20 minutes here)
    python -m benchmarks.faults --fast                # the rows the test suite runs, its sizes
    python -m benchmarks.faults --only sigkill,garbage --keep

Exit status 1 when any invariant is broken on any row. The reasons of every
broken cell follow the table; --keep leaves each row's scratch directory
(worker output, the journal, mlflow.db) for a look.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.common import load, quiet, table
from benchmarks.faults.invariants import NAMES
from benchmarks.faults.rows import FAST, ROWS, Row


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = _chosen(args.only, args.fast)
    quiet()
    print(f"load before: {load()}", flush=True)
    started = time.monotonic()
    done = [_run(name, run, args.keep) for name, run in chosen.items()]
    print(render(done))
    print(f"\n{len(done)} rows in {time.monotonic() - started:.0f} s; load after: {load()}")
    return 1 if any(r.broken for r in done) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", default="", help=f"comma-separated rows: {', '.join(ROWS)}")
    parser.add_argument("--fast", action="store_true", help="the test suite's rows and sizes")
    parser.add_argument("--keep", action="store_true", help="keep each row's scratch directory")
    return parser


def _chosen(only: str, fast: bool) -> dict[str, Callable[[Path], Row]]:
    rows: dict[str, Callable[[Path], Row]] = dict(FAST) if fast else dict(ROWS)
    if not only:
        return rows
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in rows]
    if unknown:
        sys.exit(f"error: no row {', '.join(unknown)}; rows: {', '.join(rows)}")
    return {n: rows[n] for n in names}


def _run(name: str, run: Callable[[Path], Row], keep: bool) -> Row:
    root = Path(tempfile.mkdtemp(prefix=f"hpo-faults-{name}-"))
    try:
        done = run(root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    where = f" in {root}" if keep else ""
    broken = ", ".join(done.broken) or "none"
    print(f"{name}: {done.seconds:.0f} s, broken: {broken}{where}", file=sys.stderr, flush=True)
    return done


def render(rows: Sequence[Row]) -> str:
    """The table, then why each broken cell is broken."""
    headers = ["fault", "injected", *(f"{k} {v}" for k, v in NAMES.items()), "s"]
    cells = [
        [r.fault, r.injected, *(r.invariants[k].cell for k in NAMES), f"{r.seconds:.0f}"]
        for r in rows
    ]
    why = [
        f"  {r.fault} ({key}): {v.reason}"
        for r in rows
        for key, v in r.invariants.items()
        if v.held is False
    ]
    return table(headers, cells, right={len(headers) - 1}) + (
        "\n\nbroken:\n" + "\n".join(why) if why else ""
    )


if __name__ == "__main__":
    sys.exit(main())
