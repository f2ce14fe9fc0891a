"""Nightly studies (schedule=nightly), simulated over several nights with schedule.date.

The objective is PriorObjective scored by log loss: it predicts the training
prior plus 0.3 * x, so a smaller x is a better model, and each night's space
for x decides whether its winner beats the champion. Real Optuna journal
storage, real MLflow SQLite store and model registry, real subprocesses for
the lock.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import optuna
import psycopg
import pytest
import yaml
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from optuna.trial import TrialState
from sklearn.datasets import load_breast_cancer

from hpo.config import CONF_DIR, StorageConfig
from hpo.errors import UserError
from hpo.records import PARENT_ATTR
from hpo.report import Summary
from hpo.schedule import run_scheduled
from hpo.schedule.lock import AlreadyRunning, night_lock
from hpo.schedule.names import night_of
from hpo.schedule.warm_start import misfit
from hpo.space import parse_space
from hpo.storages import open_storage

REPO = Path(__file__).parents[2]
PG_URL = os.environ.get("HPO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NIGHTS = ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")
REPORT = "nightly/report.html"

pytestmark = pytest.mark.slow


@dataclass
class Nights:
    """Everything the simulated nights left behind, read back by the tests."""

    base: str
    storage: str
    tracking: str
    summaries: dict[str, Summary] = field(default_factory=dict)
    failure: BaseException | None = None
    warnings: list[str] = field(default_factory=list)
    versions_before_rerun: int = 0
    trials_before_rerun: list[dict] = field(default_factory=list)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking, registry_uri=self.tracking)

    def study(self, night: str) -> optuna.Study:
        storage = open_storage(compose_cfg(self, night).storage)
        return optuna.load_study(study_name=f"{self.base}-{night}", storage=storage)

    def parent(self, night: str) -> mlflow.entities.Run:
        return self.client.get_run(self.study(night).user_attrs[PARENT_ATTR])

    def ledger(self) -> dict[str, mlflow.entities.Run]:
        experiment = self.client.get_experiment_by_name(f"{self.base}-nightly")
        assert experiment is not None
        runs = self.client.search_runs([experiment.experiment_id])
        return {r.data.tags["hpo.nightly.date"]: r for r in runs}

    def champion(self) -> mlflow.entities.model_registry.ModelVersion:
        return self.client.get_model_version_by_alias(self.base, "champion")


def compose_cfg(nights: Nights, night: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "study=tiny_prior",
                "schedule=nightly",
                f"schedule.date={night}",
                "study.metric=log_loss",
                f"study.data={{path:'{Path(nights.storage).parent}/data.csv',target:target}}",
                "pruner=none",
                "sampler=random",
                f"storage.url=journal:{nights.storage}",
                f"tracking.uri={nights.tracking}",
                "tracking.writer=inline",
                "n_jobs=1",
                "progress=false",
                *overrides,
            ],
        )
    cfg.study.name = nights.base
    return cfg


def write_data(path: Path, drop: int = 0) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame.iloc[drop:].to_csv(path, index=False)


class Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Nights:
    """Four nights of one study, and a rerun of the first.

    1: x fixed at 0.5, the first champion. Rerun the same night: nothing new.
    2: x in [0, 0.5], warm-started with night 1's x = 0.5: better, promoted.
    3: the data changed; x in [0.7, 1]: night 2's x do not fit; worse, kept.
    4: every trial fails: a failed night, the champion stays.
    """
    folder = tmp_path_factory.mktemp("nights")
    found = Nights(f"nightly_{uuid.uuid4().hex[:8]}", str(folder / "optuna.journal"), mlflow_uri)
    write_data(folder / "data.csv")
    handler = Collect(found.warnings)
    logging.getLogger("hpo").addHandler(handler)
    try:
        n1, n2, n3, n4 = NIGHTS
        common = ("study.n_trials=2", "schedule.warm_start=2")
        found.summaries[n1] = run_scheduled(
            compose_cfg(found, n1, *common, "study.space.x.low=0.5", "study.space.x.high=0.5")
        )
        versions = found.client.search_model_versions(f"name='{found.base}'")
        found.versions_before_rerun = len(versions)
        found.trials_before_rerun = [t.params for t in found.study(n1).trials]
        run_scheduled(
            compose_cfg(found, n1, *common, "study.space.x.low=0.5", "study.space.x.high=0.5")
        )
        found.summaries[n2] = run_scheduled(
            compose_cfg(found, n2, "study.n_trials=3", "study.space.x.high=0.5")
        )
        write_data(folder / "data.csv", drop=60)
        found.summaries[n3] = run_scheduled(
            compose_cfg(found, n3, *common, "study.space.x.low=0.7")
        )
        try:
            run_scheduled(
                compose_cfg(
                    found,
                    n4,
                    *common,
                    "+study.objective.fail_above=-1.0",
                    "study.max_failures=2",
                )
            )
        except RuntimeError as err:
            found.failure = err
    finally:
        logging.getLogger("hpo").removeHandler(handler)
    return found


def test_each_night_is_its_own_dated_study_and_experiment(nights: Nights) -> None:
    names = optuna.get_all_study_names(open_storage(compose_cfg(nights, NIGHTS[0]).storage))
    assert sorted(names) == [f"{nights.base}-{night}" for night in NIGHTS]
    for night in NIGHTS[:3]:
        assert nights.summaries[night].study_name == f"{nights.base}-{night}"
        parent = nights.parent(night)
        experiment = nights.client.get_experiment(parent.info.experiment_id)
        assert experiment.name == f"{nights.base}-{night}"
        assert parent.info.status == "FINISHED"
    assert set(nights.ledger()) == set(NIGHTS)


def test_rerunning_a_night_resumes_it_without_duplicates(nights: Nights) -> None:
    study = nights.study(NIGHTS[0])
    assert [t.params for t in study.trials] == nights.trials_before_rerun
    assert len(study.trials) == 2
    versions = nights.client.search_model_versions(f"name='{nights.base}'")
    # nights 1, 2 and 3 registered one version each; the rerun of night 1 none
    assert nights.versions_before_rerun == 1
    assert len(versions) == 3
    night = nights.ledger()[NIGHTS[0]]
    assert night.data.tags["hpo.nightly.attempts"] == "2"
    assert night.info.status == "FINISHED"


def test_night_two_starts_with_night_ones_best_parameters(nights: Nights) -> None:
    first = nights.study(NIGHTS[0])
    second = nights.study(NIGHTS[1])
    assert second.trials[0].params == first.best_params == {"x": 0.5}
    assert second.trials[0].user_attrs["warm_start"].startswith(f"{nights.base}-{NIGHTS[0]}#")
    assert second.trials[0].value == pytest.approx(first.best_value)
    assert len(second.trials) == 3, "the warm-start trial counts in the budget"
    assert nights.parent(NIGHTS[1]).data.tags["hpo.warm_start"].startswith("1 parameter sets")


def test_warm_start_skips_parameters_that_do_not_fit_naming_them(nights: Nights) -> None:
    third = nights.study(NIGHTS[2])
    assert all(t.params["x"] >= 0.7 for t in third.trials)
    skipped = third.user_attrs["warm_start"]["skipped"]
    assert len(skipped) == 2, "night 2's two best, both below 0.7"
    assert all("parameter 'x'" in reason and "[0.7, 1.0]" in reason for reason in skipped.values())
    assert sum("warm start: skipped" in w and "parameter 'x'" in w for w in nights.warnings) == 2


def test_a_multi_objective_night_warm_starts_from_the_last_nights_front(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """A Pareto study (study.objectives) runs nightly: tonight's study gets every direction."""
    found = Nights(f"pareto_{uuid.uuid4().hex[:8]}", str(tmp_path / "optuna.journal"), mlflow_uri)
    write_data(tmp_path / "data.csv")
    pareto = ("+study.objectives=[{name: calls, direction: minimize}]", "schedule.warm_start=2")
    for night, budget in zip(NIGHTS[:2], (3, 3), strict=True):
        run_scheduled(compose_cfg(found, night, f"study.n_trials={budget}", *pareto))
    first, second = found.study(NIGHTS[0]), found.study(NIGHTS[1])
    assert [d.name for d in second.directions] == ["MINIMIZE", "MINIMIZE"]
    warmed = [t for t in second.trials if "warm_start" in t.user_attrs]
    assert len(warmed) == 2
    front = sorted(first.best_trials, key=lambda t: t.values[0])
    assert warmed[0].params == front[0].params, "the front's best by the study metric first"


def test_the_first_night_promotes_its_winner(nights: Nights) -> None:
    tags = nights.parent(NIGHTS[0]).data.tags
    assert tags["hpo.champion.decision"] == "first"
    assert tags["hpo.champion.version"] == "1"


def test_a_better_night_is_promoted_on_a_paired_comparison_of_the_same_folds(
    nights: Nights,
) -> None:
    first, second = nights.study(NIGHTS[0]), nights.study(NIGHTS[1])
    tags = nights.parent(NIGHTS[1]).data.tags
    assert tags["hpo.champion.decision"] == "promoted"
    # The champion's parameters were cross-validated again on night 2's folds (same data as
    # night 1): the same value as night 1's trial, not the score of its model refit on all rows.
    assert float(tags["hpo.champion.champion_value"]) == pytest.approx(first.best_value)
    assert float(tags["hpo.champion.challenger_value"]) == pytest.approx(second.best_value)
    challenger = second.best_trial.user_attrs["cv"]["fold_values"]
    champion = first.best_trial.user_attrs["cv"]["fold_values"]
    gains = [b - a for a, b in zip(challenger, champion, strict=True)]  # log loss: lower wins
    assert float(tags["hpo.champion.diff_mean"]) == pytest.approx(sum(gains) / len(gains))
    assert float(tags["hpo.champion.diff_mean"]) > 0
    assert tags["hpo.champion.champion_version"] == "1"
    champion_run = nights.parent(NIGHTS[0]).data.tags
    assert "promoted to champion" in champion_run[f"hpo.challenged.{NIGHTS[1]}"]
    assert (
        nights.client.get_model_version(nights.base, "2").run_id
        == nights.parent(NIGHTS[1]).info.run_id
    )


def test_a_worse_night_is_not_promoted(nights: Nights) -> None:
    tags = nights.parent(NIGHTS[2]).data.tags
    assert tags["hpo.champion.decision"] == "kept"
    assert float(tags["hpo.champion.diff_mean"]) < 0
    assert float(tags["hpo.champion.challenger_value"]) > float(tags["hpo.champion.champion_value"])
    assert tags["hpo.champion.champion_version"] == "2"
    night_two = nights.parent(NIGHTS[2 - 1]).data.tags
    assert "not champion" in night_two[f"hpo.challenged.{NIGHTS[2]}"]
    version = nights.client.get_model_version(nights.base, "3")
    assert version.tags["hpo.decision"] == "kept"
    assert json.loads(version.tags["hpo.params"])["x"] >= 0.7
    assert str(nights.client.get_model_version_by_alias(nights.base, "challenger").version) == "3"


def test_a_failed_night_leaves_the_champion_untouched(nights: Nights) -> None:
    assert nights.failure is not None and "trials in a row failed" in str(nights.failure)
    champion = nights.champion()
    assert str(champion.version) == "2"
    assert champion.run_id == nights.parent(NIGHTS[1]).info.run_id
    night = nights.ledger()[NIGHTS[3]]
    assert night.info.status == "FAILED"
    assert "trials in a row failed" in night.data.tags["hpo.nightly.error"]
    study = nights.study(NIGHTS[3])
    assert {t.state for t in study.trials} == {TrialState.FAIL}
    parent = nights.parent(NIGHTS[3]).data.tags
    assert "hpo.champion.decision" not in parent and "hpo.data_fingerprint" in parent
    versions = nights.client.search_model_versions(f"name='{nights.base}'")
    assert len(versions) == 3, "nothing registered"


def test_the_data_fingerprint_is_logged_and_its_change_noted(nights: Nights) -> None:
    prints = [nights.parent(night).data.tags["hpo.data_fingerprint"] for night in NIGHTS[:3]]
    assert prints[0] == prints[1] != prints[2]
    assert "hpo.data_changed" not in nights.parent(NIGHTS[1]).data.tags
    note = nights.parent(NIGHTS[2]).data.tags["hpo.data_changed"]
    assert note == f"data changed since night {NIGHTS[1]} (fingerprint {prints[1]} -> {prints[2]})"
    assert nights.summaries[NIGHTS[2]].where["data"] == note
    page = mlflow.artifacts.load_text(f"runs:/{nights.ledger()[NIGHTS[2]].info.run_id}/{REPORT}")
    assert note in html.unescape(page)


def test_the_report_charts_every_night_promotions_and_failures(nights: Nights) -> None:
    page = mlflow.artifacts.load_text(f"runs:/{nights.ledger()[NIGHTS[3]].info.run_id}/{REPORT}")
    assert "Failed nights: 2024-05-04 (RuntimeError: 2 trials in a row failed)" in page
    assert "promotions: 2024-05-01, 2024-05-02" in page
    assert "plotly" in page and "Best value per night" in page
    best = [nights.ledger()[night].data.metrics["best_value"] for night in NIGHTS[:3]]
    assert best == pytest.approx([nights.study(n).best_value for n in NIGHTS[:3]])
    tonight = mlflow.artifacts.load_text(f"runs:/{nights.parent(NIGHTS[2]).info.run_id}/{REPORT}")
    assert "Failed nights: none" in tonight


def test_a_gain_below_min_improvement_keeps_the_champion_and_a_cut_off_promotion_is_finished(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """On Optuna's SQLite storage: better, but by less than schedule.min_improvement: kept.

    Then a night whose promotion was cut off (its decision recorded, the alias not yet moved)
    is run again: the alias moves, and no second version is registered.
    """
    found = Nights(f"sqlite_{uuid.uuid4().hex[:8]}", str(tmp_path / "unused.journal"), mlflow_uri)
    write_data(tmp_path / "data.csv")
    on_sqlite = (f"storage.url=sqlite:///{tmp_path}/optuna.db", "study.n_trials=1")
    worst, best = (
        ("study.space.x.low=0.9", "study.space.x.high=0.9"),
        (
            "study.space.x.low=0.0",
            "study.space.x.high=0.0",
        ),
    )
    run_scheduled(compose_cfg(found, "2024-07-01", *on_sqlite, *worst))
    run_scheduled(
        compose_cfg(found, "2024-07-02", *on_sqlite, *best, "schedule.min_improvement=10")
    )
    storage = f"sqlite:///{tmp_path}/optuna.db"
    second = optuna.load_study(study_name=f"{found.base}-2024-07-02", storage=storage)
    tags = found.client.get_run(second.user_attrs[PARENT_ATTR]).data.tags
    assert float(tags["hpo.champion.diff_mean"]) > 0, "x = 0 beats x = 0.9"
    assert tags["hpo.champion.decision"] == "kept"
    assert "(needs > 0 and >= 10)" in tags["hpo.champion.summary"]
    assert str(found.champion().version) == "1"

    def night_three() -> DictConfig:
        return compose_cfg(found, "2024-07-03", *on_sqlite, *best)

    run_scheduled(night_three())
    assert str(found.champion().version) == "3"
    found.client.set_registered_model_alias(found.base, "champion", "1")  # as if cut off
    run_scheduled(night_three())
    assert str(found.champion().version) == "3", "the rerun finished the promotion"
    assert len(found.client.search_model_versions(f"name='{found.base}'")) == 3

    write_data(tmp_path / "data.csv", drop=30)
    with pytest.raises(UserError, match="the data changed since night 2024-07-03 started"):
        run_scheduled(night_three())
    assert str(found.champion().version) == "3"


# --- pieces, without a night -------------------------------------------------------------------


def test_misfit_names_the_parameter() -> None:
    space = parse_space(
        {
            "depth": {"type": "int", "low": 2, "high": 6},
            "booster": {"type": "categorical", "choices": ["gbtree"]},
        }
    )
    assert misfit({"depth": 3, "booster": "gbtree"}, space) is None
    assert misfit({"depth": 3}, space) is None, "a parameter new tonight is sampled"
    assert "parameter 'depth' = 9 is outside tonight's range [2, 6]" in str(
        misfit({"depth": 9}, space)
    )
    assert "parameter 'booster' = 'dart'" in str(misfit({"booster": "dart"}, space))
    assert "parameter 'eta' is not in tonight's search space" in str(misfit({"eta": 0.1}, space))


def test_a_bad_date_or_several_workers_is_a_user_error(make_cfg) -> None:
    assert night_of("2024-02-29") == "2024-02-29"
    utc_days = {(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=s)).date() for s in (-1, 1)}
    assert dt.date.fromisoformat(night_of(None)) in utc_days, "no date: today in UTC"
    with pytest.raises(UserError, match="schedule=nightly runs in one process"):
        run_scheduled(make_cfg("schedule=nightly", "workers=2"))
    with pytest.raises(UserError, match=r"schedule\.date '2024-13-01' is not a date"):
        night_of("2024-13-01")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = f"hpo_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        if os.environ.get("HPO_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL server at HPO_TEST_PG_URL ({err})")
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_the_postgres_lock_refuses_a_second_session_and_names_the_holder(
    pg_database: str,
) -> None:
    study = "lock_test"
    with night_lock(pg_database, study, "2024-06-01"):
        refused = pytest.raises(AlreadyRunning, match=r"already running \(hpo-nightly 2024-06-01 ")
        with refused, night_lock(pg_database, study, "2024-06-01"):
            pass
        with night_lock(pg_database, f"{study}_other", "2024-06-01"):
            pass  # another study's night is not blocked
    with night_lock(pg_database, study, "2024-06-02"):
        pass  # released when the first night ended


@pytest.mark.postgres
def test_nights_on_postgres_storage_warm_start_and_promote(
    pg_database: str, tmp_path: Path, mlflow_uri: str
) -> None:
    found = Nights(f"pg_{uuid.uuid4().hex[:8]}", str(tmp_path / "unused.journal"), mlflow_uri)
    write_data(tmp_path / "data.csv")
    on_pg = (f"storage.url={pg_database}", "study.n_trials=2")
    fixed = ("study.space.x.low=0.5", "study.space.x.high=0.5")
    run_scheduled(compose_cfg(found, "2024-06-01", *on_pg, *fixed))
    run_scheduled(compose_cfg(found, "2024-06-02", *on_pg, "study.space.x.high=0.5"))

    storage = pg_database.replace("postgresql://", "postgresql+psycopg://", 1)
    first = optuna.load_study(study_name=f"{found.base}-2024-06-01", storage=storage)
    second = optuna.load_study(study_name=f"{found.base}-2024-06-02", storage=storage)
    assert second.trials[0].params == first.best_params
    decisions = [
        found.client.get_run(s.user_attrs[PARENT_ATTR]).data.tags["hpo.champion.decision"]
        for s in (first, second)
    ]
    assert decisions == ["first", "promoted"]
    assert found.champion().run_id == second.user_attrs[PARENT_ATTR]


# --- the command line, two processes -----------------------------------------------------------

STUDY = """
name: tiny_night
objective: {_target_: tests.hpo.helpers.PriorObjective, sleep: 0.4}
data: breast_cancer
cv: {scheme: kfold, n_splits: 2}
metric: log_loss
n_trials: null
timeout: 8
space:
  x: {type: float, low: 0.0, high: 1.0}
"""


def hpo(tmp_path: Path, night: str, tracking: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo",
            "study=tiny_night",
            "schedule=nightly",
            f"schedule.date={night}",
            "pruner=none",
            f"tracking.uri={tracking}",
            "progress=false",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def studies(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny_night.yaml").write_text(STUDY)
    yield tmp_path


def test_of_two_runs_started_together_one_refuses_at_once_saying_already_running(
    studies: Path, mlflow_uri: str
) -> None:
    """Also the time bound: the other stops at study.timeout, closes its runs, exits 0."""
    runs = [hpo(studies, "2024-06-01", mlflow_uri) for _ in range(2)]
    outputs = {run.pid: run.communicate(timeout=300) for run in runs}
    ran, refused = sorted(runs, key=lambda run: run.returncode)
    out, err = outputs[ran.pid]
    message = outputs[refused.pid][1].strip()

    assert (ran.returncode, refused.returncode) == (0, 2), err
    assert message.startswith("error: nightly study 'tiny_night' is already running (night ")
    assert len(message.splitlines()) == 1
    assert f":{ran.pid}, since " in message, "it names the process holding the lock"
    assert "promoted to champion (first night" in out
    client = MlflowClient(mlflow_uri)
    names = ("tiny_night-2024-06-01", "tiny_night-nightly")
    experiments = [client.get_experiment_by_name(name) for name in names]
    logged = client.search_runs([e.experiment_id for e in experiments if e], max_results=1000)
    assert len(logged) > 3 and all(r.info.status != "RUNNING" for r in logged), "all closed"
    ledger = [r for r in logged if r.data.tags.get("hpo.role") == "night"]
    attempts = [r.data.tags["hpo.nightly.attempts"] for r in ledger]
    assert attempts == ["1"], "the refusal left no mark"
    storage = open_storage(StorageConfig(url=f"journal:{studies}/optuna.journal"))
    trials = optuna.load_study(study_name=names[0], storage=storage).trials
    assert trials and {t.state for t in trials} == {TrialState.COMPLETE}
    started = [t.datetime_start for t in trials if t.datetime_start]
    assert (max(started) - min(started)).total_seconds() < 8, "no trial starts past the timeout"


# --- the scheduling files under docker/nightly ---------------------------------------------------


def scheduled_commands() -> dict[str, list[str]]:
    """The hpo arguments each scheduling file runs."""
    folder = REPO / "docker" / "nightly"
    cron = next(line for line in (folder / "crontab").read_text().splitlines() if "-m hpo" in line)
    service = next(
        line
        for line in (folder / "hpo-nightly@.service").read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    job = yaml.safe_load((folder / "cronjob.yaml").read_text())
    compose = yaml.safe_load((folder / "compose.yaml").read_text())
    return {
        "crontab": cron.split("-m hpo", 1)[1].split(">>")[0].split(),
        "systemd": service.split("-m hpo", 1)[1].replace("%i", "xgb_f1").split(),
        "cronjob": job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
        "compose": compose["services"]["nightly"]["environment"]["HPO_NIGHTLY_ARGS"].split(),
    }


@pytest.mark.parametrize("where", ["crontab", "systemd", "cronjob", "compose"])
def test_each_scheduling_file_runs_a_nightly_study_the_config_accepts(where: str) -> None:
    args = scheduled_commands()[where]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=args)
    assert cfg.schedule.kind == "nightly"
    assert cfg.study.name == "xgb_f1" and cfg.study.timeout > 0


def test_the_cronjob_never_runs_two_nights_at_once() -> None:
    job = yaml.safe_load((REPO / "docker" / "nightly" / "cronjob.yaml").read_text())
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"
