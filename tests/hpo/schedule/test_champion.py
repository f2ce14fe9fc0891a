"""Champion/challenger (hpo/schedule/champion.py): promoted only if better on the same folds."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import optuna
import pytest

from hpo.config import Config
from hpo.errors import UserError
from hpo.names import PARENT_ATTR
from hpo.schedule import run_scheduled
from tests.hpo.schedule.helpers import NIGHTS, Nights, compose_cfg, write_data

pytestmark = pytest.mark.slow


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
    assert "(needs > 0 and >= 10, p < 0.05)" in tags["hpo.champion.summary"]
    assert str(found.champion().version) == "1"

    def night_three() -> Config:
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


def test_a_gain_some_folds_contradict_is_not_significant_a_steady_one_is() -> None:
    """The gate's test: the same mean gain, spread across folds or steady on each."""
    from hpo.schedule.champion import one_sided_p

    noisy = one_sided_p([0.03, -0.02, 0.04, -0.03, 0.03], n_train=400, n_test=100)
    steady = one_sided_p([0.011, 0.009, 0.010, 0.012, 0.008], n_train=400, n_test=100)
    worse = one_sided_p([-0.011, -0.009, -0.010, -0.012, -0.008], n_train=400, n_test=100)
    assert noisy > 0.05 > steady
    assert worse > 0.95, "a loss is never significant as a gain"
