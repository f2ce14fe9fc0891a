"""The study runner: resolve the config into a plan, then ask, evaluate and tell to the budget.

One module per step of a study, in the order a study meets them:

- ``plan``: the config resolved and checked once (``Plan``, ``make_plan``)
- ``opening``: create or resume the study, refuse one it does not match
- ``liveness``: heartbeats, the watchdog, failing dead workers' trials
- ``budget``: ``claim`` a trial under the study lock, never past the budget
- ``trial``: ``evaluate`` one trial and tell both stores its outcome
- ``telling``: ``tell`` Optuna a trial's end once, whoever else ends it meanwhile
- ``loop``: ``run``, the loop from the first claim to ``finish``
- ``progress``: the bar, or a log line per trial
- ``finish``: summary, plots and the refit best model on the parent run
"""

from hpo.runner.budget import COUNTED, claim
from hpo.runner.finish import finish
from hpo.runner.liveness import UNOWNED_SECONDS, heartbeat, recover, watchdog
from hpo.runner.loop import run
from hpo.runner.opening import open_study
from hpo.runner.plan import Plan, make_plan
from hpo.runner.telling import CV_ATTR, tell
from hpo.runner.trial import evaluate

__all__ = [
    "COUNTED",
    "CV_ATTR",
    "UNOWNED_SECONDS",
    "Plan",
    "claim",
    "evaluate",
    "finish",
    "heartbeat",
    "make_plan",
    "open_study",
    "recover",
    "run",
    "tell",
    "watchdog",
]
