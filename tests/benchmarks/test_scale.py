"""benchmarks/scale.py's arithmetic: per-trial times from claim stamps, MLflow's metric rows
per run, and the PASS/MISS of each target (no study is run)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchmarks.scale import STUDY_NAME, metric_rows, per_trial, rows_for
from hpo.names import ROLE_STUDY, ROLE_TAG, TRIAL_TAG


def test_each_trial_lasts_from_its_claim_to_the_next_and_the_last_to_finish() -> None:
    stamps = [0.0, 1.0, 3.0, 6.0]  # the fourth claim found the budget used: it has no trial
    assert per_trial(stamps, finish_at=6.5, trials=3) == [1.0, 2.0, 3.5]


def mlflow_db(folder: Path, rows_per_trial: list[int], parent_rows: int) -> None:
    """The few columns of MLflow's tables that metric_rows reads, another study beside."""
    db = sqlite3.connect(folder / "mlflow.db")
    db.executescript(
        "CREATE TABLE experiments (experiment_id INTEGER, name TEXT);"
        "CREATE TABLE runs (run_uuid TEXT, experiment_id INTEGER);"
        "CREATE TABLE metrics (run_uuid TEXT, key TEXT);"
        "CREATE TABLE tags (run_uuid TEXT, key TEXT, value TEXT);"
    )
    db.executemany("INSERT INTO experiments VALUES (?, ?)", [(1, STUDY_NAME), (2, "other")])
    runs = [(f"t{n}", {TRIAL_TAG: str(n)}, rows) for n, rows in enumerate(rows_per_trial)]
    runs += [("parent", {ROLE_TAG: ROLE_STUDY}, parent_rows)]
    for run, tags, rows in runs:
        db.execute("INSERT INTO runs VALUES (?, 1)", (run,))
        db.executemany("INSERT INTO tags VALUES (?, ?, ?)", [(run, *kv) for kv in tags.items()])
        db.executemany("INSERT INTO metrics VALUES (?, 'm')", [(run,)] * rows)
    db.execute("INSERT INTO runs VALUES ('elsewhere', 2)")
    db.executemany("INSERT INTO metrics VALUES ('elsewhere', 'm')", [()] * 50)
    db.commit()
    db.close()


def test_metric_rows_count_each_trial_run_and_the_parent_of_this_study_only(
    tmp_path: Path,
) -> None:
    mlflow_db(tmp_path, [15] * 150 + [16] + [15] * 49, parent_rows=7)
    found = metric_rows(tmp_path)
    assert found["runs"] == 200 and found["parent"] == 7
    assert (found["first_max"], found["last_max"], found["max"]) == (15, 16, 16)
    assert found["mean"] == (15 * 199 + 16) / 200


def result(last_ms: float, end_mb: float, last_rows: int, end_s: float) -> dict:
    """A study of 300 trials: 50 ms a trial, the last 100 at ``last_ms``; 400 MB until
    its last trial."""
    per = [0.05] * 200 + [last_ms / 1000] * 100
    return {
        "per_trial": per,
        "cpu_per_trial": per,
        "rss": [400.0] * 299 + [end_mb],
        "children": [(0, 300), (250, 300)],
        "peak_mb": 600.0,
        "metrics": {
            "mean": 15.0,
            "max": last_rows,
            "first_max": 15,
            "last_max": last_rows,
            "parent": 7,
        },
        "end": end_s,
        "drain": 1.0,
        "look": {"url_at": 9.0, "table_at": 12.0, "counted": "100 matching runs"},
    }


FLOOR = {"per_trial": [0.01] * 200 + [0.03] * 100}  # TPE's own: 10 ms, 30 ms at the end
FLOOR["cpu_per_trial"] = FLOOR["per_trial"]
FLOOR["rss"] = [100.0] * 150 + [110.0] * 150


def verdicts(res: dict) -> list[str]:
    return [row[-1] for row in rows_for("journal", res, FLOOR, 300) if row[-1]]


def test_every_target_met_passes() -> None:
    # per trial 50 -> 99 ms, hpo's own 40 -> 69; memory: 1.2 x 400 MB + the 10 MB the
    # floor grew = 490 MB
    assert verdicts(result(last_ms=99, end_mb=490, last_rows=15, end_s=59)) == ["PASS"] * 6


def test_each_target_missed_is_a_miss() -> None:
    res = result(last_ms=111, end_mb=491, last_rows=16, end_s=60)  # hpo's own 40 -> 81
    res["look"] = {"error": "TimeoutError: the runs table was not drawn"}
    assert verdicts(res) == ["MISS"] * 6


def test_tpe_s_own_growth_misses_the_total_but_not_hpo_s_own() -> None:
    floor = {"per_trial": [0.01] * 200 + [0.09] * 100, "rss": FLOOR["rss"]}
    floor["cpu_per_trial"] = floor["per_trial"]
    res = result(last_ms=140, end_mb=400, last_rows=15, end_s=10)  # hpo's own 40 -> 50
    assert [row[-1] for row in rows_for("journal", res, floor, 300)][:3] == ["MISS", "", "PASS"]
