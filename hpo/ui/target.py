"""What ``python -m hpo.ui`` shows: the study's MLflow experiment and Optuna study, and
the URLs that land on them.

Both are looked up before any server starts, so a wrong name or path is one
``error:`` line at once rather than an empty UI after a 13 s start-up; and a
missing store is refused, never created where a mistyped path points.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from hpo.cli import first_line
from hpo.config import StorageConfig, TrackingConfig
from hpo.errors import UserError
from hpo.names import DIRECTION_TAG, METRIC_TAG, ROLE_STUDY, ROLE_TAG, VIEW_KEY, VIEW_TAG
from hpo.secrets import mask
from hpo.storages import display_url, open_storage, optuna_url, storage_file, storage_url
from hpo.tracking.relocate import relocate
from hpo.tracking.store import bound_calls, check_server, default_artifacts, is_server

# The runs table of "Model training" experiments in MLflow 3.x; without workflowType the
# UI opens on its GenAI overview ("Traces 0").
RUNS_ROUTE = "#/experiments/{id}/runs"
WORKFLOW = {"workflowType": "machine_learning"}
NAMES_SHOWN = 5  # experiment names listed when the study's is not found


@dataclass(frozen=True)
class Experiment:
    """The study's MLflow experiment, and the metric its trials are ranked by."""

    id: str
    metric: str | None = None  # the study metric (tag hpo.metric of the parent run)
    direction: str | None = None  # maximize or minimize
    view: bool = False  # it holds the study's runs-table view (VIEW_TAG, hpo/runner/described.py)


def find_experiment(tracking: TrackingConfig, study: str, rerun: str) -> Experiment:
    """The experiment named after ``study`` in ``tracking``'s store. No store, no such
    experiment or a deleted one is a UserError naming the fix (``rerun``: the command
    that runs the study). A local store whose folder was moved or copied first gets its
    artifact locations pointed at it again (hpo/tracking/relocate.py): the UI shows the
    plots and models."""
    uri = tracking.uri
    if is_server(uri):
        bound_calls(tracking.timeout)
        check_server(uri)
    else:
        path = storage_file(uri)
        if path is not None and not path.exists():
            raise UserError(
                f"no MLflow store at {path}: run the study first ({rerun}) "
                "or give tracking.uri= (the store it logged to)"
            )
    try:
        client = MlflowClient(uri)
        relocate(uri, keep=tracking.artifact_location)
        found = client.get_experiment_by_name(study)
        if found is None:
            names = [e.name for e in client.search_experiments(max_results=NAMES_SHOWN + 1)]
            raise UserError(
                f"no MLflow experiment '{study}' at {mask(uri)} (it has: {_listed(names)}): "
                f"run the study first ({rerun}) or give tracking.uri= (the store it logged to)"
            )
        if found.lifecycle_stage != "active":
            raise UserError(
                f"MLflow experiment '{study}' is deleted: restore it (mlflow experiments "
                f"restore --experiment-id {found.experiment_id}) and try again"
            )
        metric, direction = _ranking(client, str(found.experiment_id))
    except (MlflowException, SQLAlchemyError) as err:
        raise UserError(
            f"cannot read the MLflow store {mask(uri)} ({mask(first_line(err))}): "
            "check tracking.uri="
        ) from None
    return Experiment(str(found.experiment_id), metric, direction, VIEW_TAG in found.tags)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN]) or "none"
    return shown + (", ..." if len(names) > NAMES_SHOWN else "")


def _ranking(client: MlflowClient, experiment_id: str) -> tuple[str | None, str | None]:
    """The study metric and direction its parent run was tagged with (None, None: no
    parent run, as after a repair moved it)."""
    role = f"tags.`{ROLE_TAG}` = '{ROLE_STUDY}'"
    parents = client.search_runs([experiment_id], role, max_results=1)
    if not parents:
        return None, None
    tags = parents[0].data.tags
    return tags.get(METRIC_TAG), tags.get(DIRECTION_TAG)


def runs_url(base: str, experiment: Experiment) -> str:
    """The MLflow UI URL of the experiment's runs table, best trial first.

    Sorted by the study metric, the table is flat: MLflow nests child runs under
    their parent (collapsed, one row for the whole study) only in its default
    sort by start time. Runs without the metric (pruned, failed) come last. A
    study that finished holds its view (columns: the metric, its std, the state,
    the parameters), opened by its share key; the view sorts as said, and a sort
    in the URL would make MLflow ignore it.
    """
    query = dict(WORKFLOW)
    if experiment.view:
        query["viewStateShareKey"] = VIEW_KEY
    elif experiment.metric:
        query["orderByKey"] = f"metrics.`{experiment.metric}`"
        query["orderByAsc"] = "true" if experiment.direction == "minimize" else "false"
    route = RUNS_ROUTE.format(id=quote(experiment.id))
    return f"{mask(base).rstrip('/')}/{route}?{urlencode(query, quote_via=quote)}"


def artifacts_root(tracking: TrackingConfig) -> str | None:
    """Where the study's runs put their artifacts: tracking.artifact_location, else the
    default hpo used (./mlartifacts beside a local mlflow.db); None: MLflow's own."""
    return tracking.artifact_location or default_artifacts(tracking.uri)


@dataclass(frozen=True)
class OptunaStudy:
    """The study in its Optuna storage, as optuna-dashboard is given and shows it."""

    storage: str  # the storage as optuna-dashboard accepts it (hpo.storages.optuna_url)
    study_id: int
    shown: str  # the storage for people (no password)


def find_study(storage: StorageConfig, study: str, rerun: str) -> OptunaStudy:
    """The study in ``storage``; no store or no such study is a UserError naming the fix."""
    url = storage_url(storage)
    path = storage_file(url)
    if path is not None and not path.exists():
        raise UserError(
            f"no Optuna storage at {path}: run the study first ({rerun}) "
            "or give storage= / storage.url= (the storage it ran on)"
        )
    opened = open_storage(storage)
    try:
        study_id = opened.get_study_id_from_name(study)
    except KeyError:
        names = [s.study_name for s in opened.get_all_studies()]
        raise UserError(
            f"no study '{study}' in {display_url(storage)} (it has: {_listed(names)}): "
            f"run the study first ({rerun}) or check study.name= and storage="
        ) from None
    return OptunaStudy(optuna_url(url), study_id, display_url(storage))


def dashboard_url(base: str, study: OptunaStudy) -> str:
    """optuna-dashboard's page of the study (history, importances, trials)."""
    return f"{base.rstrip('/')}/dashboard/studies/{study.study_id}"
