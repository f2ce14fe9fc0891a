"""Unattended studies: ``schedule=nightly`` runs a study as ``<name>-<YYYY-MM-DD>``.

names.py       dated study names, the night's logical date (UTC)
lock.py        one run per study at a time: PostgreSQL advisory lock or file lock
ledger.py      one MLflow run per night (``<name>-nightly``): what the report reads
warm_start.py  the previous night's best parameters, enqueued first
champion.py    champion/challenger on the same folds, MLflow model registry aliases
history.py     the HTML report of every night
night.py       the night, step by step
"""

from __future__ import annotations

from hpo.schedule.night import run_scheduled

__all__ = ["run_scheduled"]
