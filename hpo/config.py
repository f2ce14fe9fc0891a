"""The typed config schema and the registration of studies/*.yaml as Hydra options.

The schema is stored in Hydra's ConfigStore as ``hpo_schema`` and is the first
entry of conf/config.yaml's defaults list, so a misspelt key or a value of the
wrong type is refused while Hydra composes, before anything runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from hpo.errors import UserError
from hpo.paths import CONF_DIR, REPO_DIR, STUDIES_DIR, study_dirs  # noqa: F401 (shared names)


@dataclass
class CVConfig:
    """How the data is split. ``seed`` defaults to the top-level ``seed``."""

    scheme: str = "stratified_kfold"
    n_splits: int = 5
    shuffle: bool = True
    test_size: float = 0.2
    gap: int = 0
    seed: int | None = None


@dataclass
class ExtraObjective:
    """One more objective of a multi-objective study: a fit fact (CVResult.fit_facts) by name."""

    name: str = MISSING
    direction: str = "minimize"


@dataclass
class Constraint:
    """A bound a trial must meet to be chosen (hpo/constraints.py): a fit fact of the
    objective (FoldOutput.fit_facts, mean over folds) by name, with ``max``, ``min`` or both."""

    name: str = MISSING
    max: float | None = None
    min: float | None = None


@dataclass
class StudyConfig:
    """One named study: what to tune, on which data, scored how, for how long."""

    name: str = MISSING
    objective: Any = MISSING
    data: Any = MISSING
    cv: CVConfig = field(default_factory=CVConfig)
    metric: str = MISSING
    direction: str | None = None
    # More objectives (a Pareto front): each a fit fact of the objective, e.g. trainable_params.
    objectives: list[ExtraObjective] = field(default_factory=list)
    # Bounds a trial must meet to be chosen, each on a fit fact, e.g. latency_ms_b1 max 2.0.
    constraints: list[Constraint] = field(default_factory=list)
    n_trials: int | None = None
    timeout: float | None = None
    max_failures: int = 10
    space: dict[str, Any] = field(default_factory=dict)


@dataclass
class StorageConfig:
    """Where Optuna keeps the study: ``journal:PATH``, ``sqlite:///PATH`` or ``postgresql://...``.

    With ``url`` empty, PostgreSQL from its parts (host, port, database, user);
    there is no password key: libpq reads PGPASSWORD or ~/.pgpass itself.
    """

    url: str = "journal:optuna.journal"
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    max_retry: int = 3  # times a trial whose worker died is run again
    outage_limit: float = 300.0  # seconds workers wait out an unreachable database, then exit 1
    host: str | None = None  # PostgreSQL parts, used when url is empty
    port: int | None = None
    database: str | None = None
    user: str | None = None


@dataclass
class TrackingConfig:
    """Where MLflow logs. ``enabled: false`` runs the study without MLflow."""

    uri: str = "sqlite:///mlflow.db"
    artifact_location: str | None = None
    enabled: bool = True
    writer: str = "process"  # process: child runs written off the trial's path; inline
    # The longest one MLflow call may block a trial (a server that does not answer): past
    # it, the write waits in the spool and the trials go on.
    timeout: float = 30.0
    spool: str = "."  # writes MLflow could not take wait in SPOOL/hpo-spool/<study>/
    # Points kept of each learning curve (per fold), evenly spaced with the last; 0: all.
    # Curves were 97.5% of the metric rows of a study: 536 a trial unthinned.
    curve_points: int = 20


@dataclass
class CostConfig:
    """What one wrong call costs: a false positive, a false negative (any unit). Neither
    set: no cost (threshold 0.5); one set: the other costs 1."""

    fp: float | None = None
    fn: float | None = None

    @property
    def given(self) -> bool:
        return self.fp is not None or self.fn is not None

    def pair(self) -> tuple[float, float]:
        """(cost of a false positive, of a false negative)."""
        return (
            1.0 if self.fp is None else float(self.fp),
            1.0 if self.fn is None else float(self.fn),
        )


@dataclass
class NestedConfig:
    """Nested cross-validation of the whole procedure (tuning and refit), after the study.

    ``outer`` folds split the tuning rows as the study's CV does; in each, a study of
    ``trials`` trials (default: the study's n_trials) tunes on the outer-training rows
    and its refit winner is scored on the outer-test rows. ``only``: skip the study."""

    outer: int = 0  # 0: off
    trials: int | None = None
    only: bool = False


@dataclass
class EvaluationConfig:
    """How the winner is judged beyond its CV score."""

    # Rows reserved before tuning (a fraction), never seen by a trial; the refit winner is
    # scored on them once at the end. 0: none (the CV and BBC-CV estimates only).
    test_size: float = 0.0
    # Bootstraps of BBC-CV at the end (the winner's score corrected for having been
    # chosen, from the trials' out-of-fold scores); 0: none, and none are kept.
    bbc_boot: int = 1000
    # A binary task's decision threshold chosen for the least expected cost on the winner's
    # out-of-fold scores (never the test rows): evaluation.cost.fn=5 (a false negative costs
    # five false positives); unset: 0.5.
    cost: CostConfig = field(default_factory=CostConfig)
    # The winner's validation curve (along its main complexity knob) and learning curve,
    # refit on the study's folds, with a bias/variance verdict: about a dozen trials' fits.
    # auto: drawn when those fits are estimated at a minute or less; true: always; false.
    curves: Any = "auto"
    # Nested CV (hpo/evaluation/nested/): evaluation.nested.outer=5 estimates the whole
    # procedure, tuning included, on outer folds no inner study saw. 0: off.
    nested: NestedConfig = field(default_factory=NestedConfig)


@dataclass
class ScheduleConfig:
    """Unattended runs: ``kind: nightly`` runs the study as ``<name>-<YYYY-MM-DD>``."""

    kind: str = "none"  # none | nightly
    date: str | None = None  # the night's logical date, YYYY-MM-DD; default: today in UTC
    warm_start: int = 5  # the previous night's best parameter sets tried first; 0: none
    min_improvement: float = 0.0  # mean paired fold gain a challenger needs to be promoted
    alpha: float = 0.05  # and a one-sided p below this (corrected t-test); 1: no test
    model_name: str | None = None  # registered model; default: the study name
    alias: str = "champion"


@dataclass
class Config:
    study: StudyConfig = MISSING
    sampler: Any = MISSING
    pruner: Any = MISSING
    storage: StorageConfig = field(default_factory=StorageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cv: CVConfig | None = None
    seed: int = 0
    n_jobs: int = 0  # folds evaluated side by side; 0: the fewest waves that fill every core
    progress: bool = True
    workers: int = 1  # local worker processes on the study (hpo/workers.py)
    # true: this process only runs trials (a worker joining a study); whoever runs the
    # study without it writes the summary, plots and model, and owns the parent run's state
    trials_only: bool = False
    worker_id: int = 0  # a launcher sweep's job index (conf/launcher/): identical jobs differ by it


def register_configs() -> None:
    """Store the schema and every study file in Hydra's ConfigStore (later folders win)."""
    cs = ConfigStore.instance()
    cs.store(name="hpo_schema", node=Config)
    for folder in study_dirs():
        for path in sorted(folder.glob("*.yaml")):
            cs.store(group="study", name=path.stem, node=OmegaConf.load(path))


def typed(cfg: DictConfig | Config) -> Config:
    """The composed config as the schema's dataclasses, every interpolation resolved.

    Built once, by the entry point: below it nothing reads a ``DictConfig``, so a
    function's signature says which part of the config it needs, and mypy checks
    it. The open groups (sampler, pruner, objective, data) become plain dicts,
    which ``hydra.utils.instantiate`` takes as they are.
    """
    if isinstance(cfg, Config):
        return cfg
    refuse_unknown_keys(cfg)
    schema = OmegaConf.get_type(cfg)
    known = isinstance(schema, type) and issubclass(schema, Config)
    config = OmegaConf.to_object(
        cfg if known else OmegaConf.merge(OmegaConf.structured(Config), cfg)
    )
    assert isinstance(config, Config)
    return config


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """A key the schema does not have (``+study.n_trail=2``, ``+metric=f1``) is a UserError
    naming the key it was likely meant to be: Hydra's ``+`` adds it, and nothing reads it."""
    schema = OmegaConf.get_type(cfg)
    known = schema if isinstance(schema, type) and issubclass(schema, Config) else Config
    key = next(_unknown(cfg, known, ""), None)
    if key is not None:
        raise UserError(f"unknown key '{key}': {suggestion(key)}")


def _unknown(node: Any, schema: type, prefix: str) -> Iterator[str]:
    hints = typing.get_type_hints(schema)
    for key in node:
        if key not in hints:
            yield prefix + str(key)
            continue
        sub = _schema_of(hints[key])
        value = node[key]
        if sub is not None and isinstance(value, DictConfig):
            yield from _unknown(value, sub, f"{prefix}{key}.")


def _schema_of(hint: Any) -> type | None:
    """The dataclass a field holds (``CVConfig | None`` -> CVConfig), else None (open)."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
            return candidate
    return None


def suggestion(key: str) -> str:
    """What to type instead of the unknown ``key``: the closest known key, else --cfg job."""
    known = list(_known_keys(Config, ""))
    last = key.rsplit(".", 1)[-1]
    same_name = [k for k in known if k.rsplit(".", 1)[-1] == last and k != key]
    close = same_name or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}=? (python -m hpo --cfg job shows every key)"
    return "check its spelling against python -m hpo --cfg job"


def _known_keys(schema: type, prefix: str) -> Iterator[str]:
    for name, hint in typing.get_type_hints(schema).items():
        yield prefix + name
        sub = _schema_of(hint)
        if sub is not None:
            yield from _known_keys(sub, f"{prefix}{name}.")


def to_yaml(config: Config) -> str:
    """``config`` as YAML, as Hydra would have written it (for the run's config.yaml)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def effective_cv(cfg: Config) -> CVConfig:
    """The study's CV unless ``cv=...`` replaced it, with the top-level seed filled in."""
    chosen = cfg.cv if cfg.cv is not None else cfg.study.cv
    cv: CVConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CVConfig), chosen))  # type: ignore[assignment]
    if cv.seed is None:
        cv.seed = int(cfg.seed)
    return cv
