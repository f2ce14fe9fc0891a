"""Nested cross-validation: an unbiased estimate of the whole procedure, tuning included.

The study's best CV score is optimistic: the search chose it because it did
well on those very folds. Nested CV repeats the whole procedure (tune, choose
the best, refit) inside each of K outer folds, on the outer-training rows
only, and scores the refit winner on the outer-test rows, which no trial of
that fold ever saw. The mean over outer folds estimates what the procedure
gives on new data; the spread of the winners' parameters shows how stable
the choice is.

Each outer fold's inner study is an ordinary study of the runner
(``hpo.runner.run``) on a plan made with ``dataclasses.replace`` from the
study's own: its data restricted to the outer-training rows, named
``<study>-nested-<k>`` in the study's Optuna storage (a rerun resumes it),
seeded by (seed, k), with MLflow off.

One module per job, each importing only those above it:

- ``result``: ``OuterFold``, ``NestedResult`` (the estimate, its summary lines), ``param_spread``
- ``runs``: ``log_nested``, the MLflow run ``nested`` with a child per outer fold
- ``procedure``: ``settings`` (checked before the study), ``outer_folds``, ``inner_plan``,
  ``outer_fold``, ``nested_cv``, and ``with_nested``, the command's entry (it imports
  ``runs``, and so MLflow, only when tracking is on)
"""

from hpo.evaluation.nested.procedure import (
    inner_plan,
    nested_cv,
    outer_fold,
    outer_folds,
    settings,
    with_nested,
)
from hpo.evaluation.nested.result import NestedResult, OuterFold, inner_name, param_spread

__all__ = [
    "NestedResult",
    "OuterFold",
    "inner_name",
    "inner_plan",
    "nested_cv",
    "outer_fold",
    "outer_folds",
    "param_spread",
    "settings",
    "with_nested",
]
