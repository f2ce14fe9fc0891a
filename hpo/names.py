"""Every name hpo writes into the two stores, in one place.

MLflow tags (``hpo.*``) and Optuna user attributes are read back by other
modules (the agreement check, the nightly ledger, the runner on resume) and
by people filtering runs in the MLflow UI: a name spelt twice is a bug that
only shows as a run that silently matches nothing. Values stored under these
names outlive the code, so a name here never changes meaning.
"""

from __future__ import annotations

# --- Optuna user attributes -------------------------------------------------------
PARENT_ATTR = "mlflow_parent_run_id"  # study: the study's MLflow parent run
RUN_ATTR = "mlflow_run_id"  # trial: the trial's MLflow child run
CV_ATTR = "cv"  # trial: {CV_STD, CV_FOLD_VALUES, CV_FIT_FACTS} of its cross-validation
CV_STD = "std"
CV_FOLD_VALUES = "fold_values"
OOF_ATTR = "oof"  # trial: its out-of-fold scores on the study's rows, for BBC-CV at the end
CV_FIT_FACTS = "info"  # the stored key predates the name fit facts: kept for old studies
WORKER_ATTR = "worker"  # trial: "host:pid" of the worker that runs it
FAIL_REASON_ATTR = "fail_reason"  # trial: why it failed, one line
METRIC_ATTR = "metric"  # study: the study metric it was created for
SPACE_ATTR = "space"  # study: the search space's fingerprint
DATA_ATTR = "data"  # study: {"hash", "what"} of the data its trials were scored on
FOLDS_ATTR = "folds"  # study: {"hash", "what"} of its CV folds (scheme, splits, seed, groups)
WARM_START_ATTR = "warm_start"  # study and trial: where tonight's first trials came from
# trial: whether it met study.constraints (true/false). The values themselves are Optuna's own
# record, Trial.set_constraint (system attrs "constraints:<fact>", <= 0 met), which the
# samplers, study.best_trial(s) and the plots read.
FEASIBLE_ATTR = "feasible"
CONSTRAINTS_ATTR = "constraints"  # study: its constraints as text ("" none), refused if changed

# --- MLflow tags: every run ---------------------------------------------------------
STUDY_TAG = "hpo.study"
ROLE_TAG = "hpo.role"  # "study" on the parent run
ROLE_STUDY = "study"
TRIAL_TAG = "hpo.trial"
STATE_TAG = "hpo.state"  # COMPLETE, PRUNED, FAIL, KILLED
FAIL_REASON_TAG = "hpo.fail_reason"
PRUNE_REASON_TAG = "hpo.prune_reason"
SAMPLER_TAG = "hpo.sampler"
HOST_TAG = "hpo.host"
PID_TAG = "hpo.pid"
FEASIBLE_TAG = "hpo.feasible"  # a trial of a study with constraints: true or false
# + a constrained fact: the trial's constraint value (fact - max, min - fact; <= 0 met)
CONSTRAINT_METRIC_PREFIX = "constraint_"

# --- MLflow tags: the parent run ----------------------------------------------------
METRIC_TAG = "hpo.metric"
DIRECTION_TAG = "hpo.direction"
OBJECTIVES_TAG = "hpo.objectives"
BEST_TRIAL_TAG = "hpo.best_trial"
PARETO_FRONT_TAG = "hpo.pareto_front"
CONSTRAINTS_TAG = "hpo.constraints"  # the study's constraints, e.g. "latency_ms_b1 <= 2"
CANDIDATES_CSV = "candidates.csv"  # the candidates table (hpo/candidates.py) on the parent run
CANDIDATES_HTML = "candidates.html"
CONFIG_ARTIFACT = "config.yaml"  # the composed config (masked) on the parent run
REPORT_ARTIFACT = "report.html"  # every figure of the study, one page (hpo.evaluation.page)
VERSION_PREFIX = "hpo.version."  # + a distribution: its version when the study was created
BIAS_VARIANCE_TAG = "hpo.bias_variance"  # the winner's verdict from its curves
TIES_TAG = "hpo.ties"  # next best trials the winner cannot be told apart from, or "none"
MODEL_TRIAL_TAG = "hpo.model_trial"
MODEL_URI_TAG = "hpo.model_uri"
DECISION_MODEL_URI_TAG = "hpo.decision_model_uri"  # best_model with the cost threshold applied
PARAMS_TRIAL_TAG = "hpo.params_trial"  # whose parameters the parent run's params are

# --- MLflow's own tags that hpo writes, for its UI ------------------------------------
NOTE_TAG = "mlflow.note.content"  # the markdown description of a run or an experiment
VIEW_KEY = "hpo"  # the runs table's view of a study: ?viewStateShareKey=hpo
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"  # an experiment tag: that view, as JSON
RUN_NAME_TAG = "mlflow.runName"
MLFLOW_OWN = (NOTE_TAG, VIEW_TAG, RUN_NAME_TAG)  # MLflow's names, not hpo.*: its UI reads them

# --- MLflow tags: nested CV (evaluation.nested), the run "nested" and its outer-<k> children --
ROLE_NESTED = "nested"  # hpo.role of the nested-CV run in the study's experiment
ROLE_OUTER = "outer"  # hpo.role of one outer fold's run (a child of the nested-CV run)
OUTER_FOLD_TAG = "hpo.outer_fold"  # on an outer fold's run: k, 0-based
INNER_STUDY_TAG = "hpo.inner_study"  # on an outer fold's run: its Optuna study, <study>-nested-<k>

# --- MLflow tags: written by hpo.check ----------------------------------------------
REPAIRED_TAG = "hpo.repaired"  # the value is the tool that repaired the run
REPAIRED_BY_CHECK = "hpo.check"
ORPHAN_TAG = "hpo.orphan"  # a surplus run, kept but marked: the reason

# --- MLflow tags: schedule=nightly (the ledger run, the night's parent run, model versions) --
NIGHT_TAG = "hpo.night"  # the night's date, YYYY-MM-DD, on a parent run and a model version
NIGHTLY_DATE_TAG = "hpo.nightly.date"
NIGHTLY_ERROR_TAG = "hpo.nightly.error"
NIGHTLY_STUDY_TAG = "hpo.nightly.study"  # on a ledger run: the base study name
NIGHTLY_HOLDER_TAG = "hpo.nightly.holder"  # on a ledger run: host:pid running the night
NIGHTLY_ATTEMPTS_TAG = "hpo.nightly.attempts"
NIGHTLY_LEDGER_RUN_TAG = "hpo.nightly.ledger_run"  # on the parent run: its ledger run
NIGHTLY_PARENT_RUN_TAG = "hpo.nightly.parent_run"  # on the ledger run: the night's parent
NIGHTLY_SEED_TAG = "hpo.nightly.sampler_seed"  # on the parent run: the night's sampler seed
ROLE_NIGHT = "night"  # hpo.role of a ledger run
FINGERPRINT_TAG = "hpo.data_fingerprint"
DATA_CHANGED_TAG = "hpo.data_changed"  # why tonight's data differs from last night's
WARM_START_TAG = "hpo.warm_start"
CHAMPION_PREFIX = "hpo.champion."  # + decision, summary and each figure of the decision
CHALLENGED_PREFIX = "hpo.challenged."  # + night: on the champion's run, each night's verdict
PARAMS_TAG = "hpo.params"  # on a model version: the trial's parameters
VALUE_TAG = "hpo.value"  # on a model version: the challenger's value
DECISION_TAG = "hpo.decision"  # on a model version: promoted or kept
