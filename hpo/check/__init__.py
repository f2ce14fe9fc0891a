"""The agreement check between a study's Optuna trials and its MLflow runs, and its repair.

``compare`` finds the mismatches, ``repair`` holds the writes that end them,
``command`` is ``python -m hpo.check``.
"""

from hpo.check.command import check, open_check, table
from hpo.check.compare import ORPHAN, Check, Mismatch

__all__ = ["ORPHAN", "Check", "Mismatch", "check", "open_check", "table"]
