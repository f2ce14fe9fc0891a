"""Progress: a tqdm bar on a terminal, one log line per trial otherwise.

Only for people watching: nothing here may fail a study (the loop ignores
its errors), and the best value is read with one query, not every trial.
"""

from __future__ import annotations

import logging
import sys

import optuna
from tqdm import tqdm

from hpo.config import Config
from hpo.constraints import best_trial
from hpo.runner.budget import COUNTED
from hpo.runner.plan import Plan
from hpo.tracking.records import TrialRecord

log = logging.getLogger(__name__)


def progress_bar(cfg: Config, plan: Plan, study: optuna.Study) -> tqdm:
    """The study's bar, started at the trials already finished (a resumed study)."""
    done = len(study.get_trials(deepcopy=False, states=COUNTED[:2]))
    return tqdm(
        total=plan.budget,
        initial=min(done, plan.budget or done),
        unit="trial",
        desc=plan.spec.name,
        disable=not (cfg.progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    )


def show(bar: tqdm, study: optuna.Study, record: TrialRecord, plan: Plan) -> None:
    """Advance the bar past a finished trial, or log its line when there is no bar."""
    value = record.metrics.get(plan.spec.metric)
    shown = f"{value:.4f}" if value is not None else "-"
    best = _best_value(study)
    if record.state != "FAIL":
        bar.update(1)
    bar.set_postfix_str(f"best {plan.spec.metric}={best}")
    if bar.disable:
        log.info(
            "trial %d %s %s=%s best=%s", record.number, record.state, plan.spec.metric, shown, best
        )


def _best_value(study: optuna.Study) -> str:
    """The best feasible value so far, formatted (``hpo.constraints.best_trial``): for one
    objective one query (get_best_trial), not every trial read back, unless the best trial
    missed a constraint; for several, the best first objective on the front.
    """
    best = best_trial(study)
    return f"{best.values[0]:.4f}" if best is not None else "-"
