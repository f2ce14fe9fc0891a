"""What nested CV found: each outer fold's score, and the estimate with the winners' spread."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def inner_name(study: str, k: int) -> str:
    """The Optuna study of outer fold ``k``: beside the study, in its storage."""
    return f"{study}-nested-{k}"


@dataclass
class OuterFold:
    """One outer fold: the inner study's winner, refit and scored on rows it never saw."""

    k: int
    study: str  # the inner study, <study>-nested-<k>
    value: float  # the refit winner on the outer-test rows: the study metric
    inner_best: float  # the inner study's best CV value (optimistic, as the study's is)
    best_trial: int
    params: dict[str, Any]
    train_rows: int
    test_rows: int


@dataclass
class NestedResult:
    """The nested estimate: the mean of the outer scores, with their std over outer folds."""

    metric: str
    trials: int  # each inner study's budget
    folds: list[OuterFold] = field(default_factory=list)

    @property
    def value(self) -> float:
        return float(np.mean([f.value for f in self.folds]))

    @property
    def std(self) -> float:
        return float(np.std([f.value for f in self.folds]))

    @property
    def inner_best(self) -> float:
        """The inner studies' best CV values, averaged: what the searches believed."""
        return float(np.mean([f.inner_best for f in self.folds]))

    def lines(self) -> list[str]:
        """The summary's lines: the estimate, then how the winners' parameters spread."""
        k = len(self.folds)
        head = (
            f"nested CV {self.metric} {self.value:.3f} ± {self.std:.3f} over {k} outer folds "
            f"(inner studies of {self.trials} trials each; the procedure's unbiased estimate)"
        )
        return [head, *_packed("outer winners: ", param_spread([f.params for f in self.folds]))]


def _packed(lead: str, items: list[str], width: int = 100) -> list[str]:
    """``lead`` and ``items`` joined by "; " in lines of about ``width``, never splitting an
    item (the next lines indented by two spaces)."""
    lines: list[list[str]] = [[]]
    used = len(lead)
    for item in items:
        if lines[-1] and used + len(item) + 2 > width:
            lines.append([])
            used = 2
        lines[-1].append(item)
        used += len(item) + 2
    said = [("  " if i else lead) + "; ".join(line) for i, line in enumerate(lines)]
    return [line + ";" for line in said[:-1]] + said[-1:]


def param_spread(chosen: list[dict[str, Any]]) -> list[str]:
    """Each parameter's values over the outer folds' winners: the range of a float, the
    distinct values of an int, each choice with its count; "in 2 of 5" for a parameter
    only some winners have (a conditional one)."""
    names = list(dict.fromkeys(name for params in chosen for name in params))
    said = []
    for name in names:
        values = [params[name] for params in chosen if name in params]
        if all(isinstance(v, float) for v in values):
            low, high = min(values), max(values)
            shown = f"{low:.3g}" if low == high else f"{low:.3g}..{high:.3g}"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            shown = ", ".join(str(v) for v in sorted(set(values)))
        else:
            counts = Counter(str(v) for v in values)
            shown = ", ".join(f"{v} x{n}" if n > 1 else v for v, n in counts.most_common())
        some = f" (in {len(values)} of {len(chosen)})" if len(values) < len(chosen) else ""
        said.append(f"{name} {shown}{some}")
    return said
