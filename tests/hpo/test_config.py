"""The typed config (hpo/config.py): built once from Hydra's, unknown keys refused by name."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hpo.config import CONF_DIR, Config, CVConfig, StorageConfig, effective_cv, suggestion, typed
from hpo.errors import UserError


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["study=xgb_f1", *overrides])


def test_the_composed_config_becomes_dataclasses_with_the_open_groups_as_dicts() -> None:
    cfg = typed(composed("seed=7"))
    assert isinstance(cfg, Config) and isinstance(cfg.storage, StorageConfig)
    assert isinstance(cfg.study.cv, CVConfig)
    assert isinstance(cfg.sampler, dict) and cfg.sampler["seed"] == 7, "interpolations resolved"
    assert isinstance(cfg.study.objective, dict)
    assert typed(cfg) is cfg


@pytest.mark.parametrize(
    ("override", "meant"),
    [("+study.n_trail=2", "study.n_trials"), ("+metric=f1", "study.metric"), ("+seeds=1", "seed")],
)
def test_an_added_key_the_schema_lacks_is_refused_naming_the_key_meant(
    override: str, meant: str
) -> None:
    with pytest.raises(UserError, match=rf"unknown key .*did you mean {meant}="):
        typed(composed(override))


def test_keys_of_the_open_groups_are_the_objectives_and_samplers_own() -> None:
    cfg = typed(composed("+study.objective.max_bin=64", "+sampler.n_ei_candidates=12"))
    assert cfg.study.objective["max_bin"] == 64 and cfg.sampler["n_ei_candidates"] == 12


def test_a_key_with_no_close_match_says_where_to_look() -> None:
    assert "--cfg job" in suggestion("zzz")


def test_the_cv_override_wins_and_takes_the_top_level_seed() -> None:
    cfg = typed(composed("cv=kfold", "seed=3"))
    cv = effective_cv(cfg)
    assert cv.scheme == "kfold" and cv.seed == 3
    assert effective_cv(typed(composed("seed=3"))).scheme == "stratified_kfold"


def test_a_config_made_without_the_schema_is_typed_too() -> None:
    raw = OmegaConf.create(OmegaConf.to_container(composed(), resolve=True))
    assert isinstance(typed(raw), Config)
