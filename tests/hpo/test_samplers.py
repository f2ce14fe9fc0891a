"""Samplers from config: seeded per trial, so workers sharing a study do not draw in step."""

from __future__ import annotations

import math

import optuna
import pytest

from hpo.errors import UserError
from hpo.runner import claim
from hpo.samplers import (
    SPACE_CACHES,
    SamplerTraits,
    build_pruner,
    build_sampler,
    sampler_traits,
    trial_sampler,
)
from hpo.space import parse_space

SPACE = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def draw(study: optuna.Study, sampler_cfg, number: int | None = None) -> float:
    """One trial claimed as hpo's loop claims it; its x."""
    trial = claim(
        study,
        study._storage,
        budget=None,
        tracker=None,
        deadline=math.inf,
        sampler_for=lambda n: trial_sampler(sampler_cfg, SPACE, n),
    )
    assert trial is not None
    x = SPACE.suggest(trial)["x"]
    study.tell(trial, x)
    return x


@pytest.mark.parametrize("sampler", ["random", "tpe", "gp"])
def test_two_workers_on_one_study_draw_distinct_points(make_cfg, sampler: str) -> None:
    cfg = make_cfg("study=tiny_prior", f"sampler={sampler}")
    storage = optuna.storages.InMemoryStorage()
    one = optuna.create_study(storage=storage, study_name="shared")
    other = optuna.load_study(storage=storage, study_name="shared")  # a second worker's view
    xs = [draw(study, cfg.sampler) for _ in range(4) for study in (one, other)]
    assert len(set(xs)) == len(xs), "no two workers drew the same point"


def test_a_random_study_draws_the_same_points_however_many_workers(make_cfg) -> None:
    cfg = make_cfg("study=tiny_prior", "sampler=random")
    alone = optuna.create_study()
    by_one = [draw(alone, cfg.sampler) for _ in range(6)]
    storage = optuna.storages.InMemoryStorage()
    shared = [optuna.create_study(storage=storage, study_name="s")]
    shared.append(optuna.load_study(storage=storage, study_name="s"))
    by_two = [draw(shared[i % 2], cfg.sampler) for i in range(6)]
    assert by_two == by_one


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "gp"])
def test_each_trials_sampler_keeps_the_search_space_cache_and_draws_as_without(
    make_cfg, monkeypatch: pytest.MonkeyPatch, sampler: str
) -> None:
    """Reseeded per trial, the sampler still works out the search space incrementally
    (not from every trial again, each trial), and draws the same points as without."""
    import hpo.runner.budget

    cfg = make_cfg("study=tiny_prior", f"sampler={sampler}", "sampler.n_startup_trials=2")
    study = optuna.create_study()

    def caches() -> list[object]:
        return [v for v in vars(study.sampler).values() if isinstance(v, SPACE_CACHES)]

    carried = [draw(study, cfg.sampler)]
    first, kept = study.sampler, caches()
    carried += [draw(study, cfg.sampler) for _ in range(4)]
    assert study.sampler is not first and kept and caches() == kept  # the same objects
    monkeypatch.setattr(hpo.runner.budget, "carry_caches", lambda previous, new: new)
    afresh = optuna.create_study()
    assert [draw(afresh, cfg.sampler) for _ in range(5)] == carried


def test_another_seed_draws_other_points(make_cfg) -> None:
    first = make_cfg("study=tiny_prior", "sampler=random", "seed=0")
    second = make_cfg("study=tiny_prior", "sampler=random", "seed=1")
    assert draw(optuna.create_study(), first.sampler) != draw(optuna.create_study(), second.sampler)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["sampler.n_startup_trials=abc"], "sampler.n_startup_trials='abc' is not a whole number"),
        (["sampler.multivariate=1"], "sampler.multivariate=1 is not true or false or null"),
        (["sampler=cmaes", "sampler.restart_strategy=ipop"], "dropped CMA-ES restarts"),
        (["sampler=cmaes", "+sampler.inc_popsize=2"], "sampler.inc_popsize=2: Optuna >= 4.4"),
        (["sampler=nsga2", "sampler.population_size=1"], "fix sampler.population_size"),
    ],
)
def test_a_bad_sampler_option_is_refused_by_name(make_cfg, overrides, expected) -> None:
    cfg = make_cfg("study=tiny_prior", *overrides)
    with pytest.raises(UserError, match=expected):
        build_sampler(cfg.sampler, SPACE)


def test_a_bad_pruner_option_is_refused_by_name(make_cfg) -> None:
    with pytest.raises(UserError, match=r"pruner.n_startup_trials='x' is not a whole number"):
        build_pruner(make_cfg("study=tiny_prior", "pruner.n_startup_trials=x").pruner)
    with pytest.raises(UserError, match=r"fix pruner.n_startup_trials"):
        build_pruner(make_cfg("study=tiny_prior", "pruner.n_startup_trials=-1").pruner)


def test_cmaes_options_in_the_config_are_accepted(make_cfg) -> None:
    cfg = make_cfg(
        "study=tiny_prior", "sampler=cmaes", "sampler.popsize=8", "sampler.lr_adapt=true"
    )
    assert isinstance(build_sampler(cfg.sampler, SPACE), optuna.samplers.CmaEsSampler)


@pytest.mark.parametrize(
    ("sampler", "reseeded", "multi", "constrained"),
    [
        ("random", True, True, False),
        ("tpe", True, True, True),
        ("cmaes", True, False, False),
        ("grid", False, True, False),
        ("nsga2", False, True, True),
        ("gp", True, True, True),
    ],
)
def test_each_shipped_sampler_states_its_traits_in_its_yaml(
    make_cfg, sampler: str, reseeded: bool, multi: bool, constrained: bool
) -> None:
    cfg = make_cfg("study=tiny_prior", f"sampler={sampler}")
    assert sampler_traits(cfg.sampler) == SamplerTraits(reseeded, multi, constrained)
    # the YAML says what the class suggests: samplers taking constraints_func honour them
    assert sampler_traits({"_target_": cfg.sampler["_target_"]}).constraints == constrained
    gridded = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5}})
    assert isinstance(build_sampler(cfg.sampler, gridded), optuna.samplers.BaseSampler)


def test_a_sampler_yaml_without_traits_is_reseeded_when_its_class_takes_a_seed() -> None:
    """A new sampler is one YAML: without ``hpo:``, workers still do not draw in step."""
    qmc = {"_target_": "optuna.samplers.QMCSampler", "seed": 3}
    assert sampler_traits(qmc) == SamplerTraits(reseed_per_trial=True, multi_objective=True)
    assert isinstance(build_sampler(qmc, SPACE), optuna.samplers.QMCSampler)
    unseeded = {"_target_": "optuna.samplers.QMCSampler", "hpo": {"reseed_per_trial": False}}
    assert not sampler_traits(unseeded).reseed_per_trial


def test_a_misspelt_trait_is_refused_naming_the_traits() -> None:
    cfg = {"_target_": "optuna.samplers.RandomSampler", "hpo": {"reseed": 1}}
    with pytest.raises(UserError, match=r"sampler\.hpo\.reseed is not a sampler trait"):
        sampler_traits(cfg)


def test_a_study_runs_under_the_gaussian_process_sampler(make_cfg) -> None:
    """sampler=gp (Optuna's GPSampler): past its startup trials the GP proposes them."""
    from hpo.runner import run

    cfg = make_cfg("study=tiny_prior", "sampler=gp", "sampler.n_startup_trials=2")
    summary = run(cfg)
    assert summary is not None and summary.counts["COMPLETE"] == cfg.study.n_trials
    assert cfg.study.n_trials > 2, "some trials past the startup ones"
