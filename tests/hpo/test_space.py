import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.errors import UserError
from hpo.space import parse_space


def one(spec, name="p"):
    return parse_space({name: spec}).params[0]


# --- parsing -----------------------------------------------------------------


def test_parse_int_range():
    p = one({"type": "int", "low": 2, "high": 10}, "max_depth")
    assert p.name == "max_depth"
    assert p.distribution == IntDistribution(2, 10)


def test_parse_int_range_with_step():
    assert one({"type": "int", "low": 2, "high": 10, "step": 2}).distribution == IntDistribution(
        2, 10, step=2
    )


def test_parse_float_log_range():
    p = one({"type": "float", "low": 0.01, "high": 0.3, "log": True})
    assert p.distribution == FloatDistribution(0.01, 0.3, log=True)


def test_parse_float_range_with_step():
    p = one({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25})
    assert p.distribution == FloatDistribution(0.0, 1.0, step=0.25)


def test_parse_categorical():
    p = one({"type": "categorical", "choices": ["gbtree", "dart"]})
    assert p.distribution == CategoricalDistribution(["gbtree", "dart"])


def test_parse_keeps_declaration_order():
    space = parse_space(
        {
            "b": {"type": "int", "low": 1, "high": 2},
            "a": {"type": "float", "low": 0.0, "high": 1.0},
        }
    )
    assert [p.name for p in space.params] == ["b", "a"]


def test_override_like_values_are_coerced():
    """Command-line overrides give ints for float bounds and strings for ints."""
    space = parse_space(
        {
            "lr": {"type": "float", "low": 0, "high": 1},
            "depth": {"type": "int", "low": "2", "high": "8", "step": "2"},
            "k": {"type": "categorical", "choices": [np.int64(3), np.int64(5)]},
        }
    )
    lr, depth, k = (p.distribution for p in space.params)
    assert isinstance(lr, FloatDistribution)
    assert (lr.low, lr.high) == (0.0, 1.0)
    assert isinstance(lr.low, float)
    assert depth == IntDistribution(2, 8, step=2)
    assert k.choices == (3, 5)
    assert all(type(c) is int for c in k.choices)


def test_numeric_only():
    numeric = parse_space({"a": {"type": "int", "low": 1, "high": 3}})
    mixed = parse_space(
        {
            "a": {"type": "int", "low": 1, "high": 3},
            "b": {"type": "categorical", "choices": ["x"]},
        }
    )
    assert numeric.numeric_only
    assert not mixed.numeric_only


# --- errors ------------------------------------------------------------------


def test_empty_space_is_a_user_error():
    with pytest.raises(UserError, match="empty search space"):
        parse_space({})


def test_spec_that_is_not_a_mapping_is_a_user_error():
    with pytest.raises(UserError, match=r"study\.space\.max_depth must be a mapping"):
        parse_space({"max_depth": 5})


def test_unknown_key_is_a_user_error_naming_it():
    with pytest.raises(UserError, match=r"study\.space\.max_depth has unknown key\(s\) hihg"):
        parse_space({"max_depth": {"type": "int", "low": 1, "hihg": 5}})


@pytest.mark.parametrize("kind", [None, "integer", "bool"])
def test_bad_type_is_a_user_error(kind):
    with pytest.raises(UserError, match=r"study\.space\.max_depth\.type is .*int, float"):
        parse_space({"max_depth": {"type": kind, "low": 1, "high": 5}})


@pytest.mark.parametrize("kind", ["int", "float"])
def test_low_above_high_is_a_user_error(kind):
    with pytest.raises(UserError, match=rf"study\.space\.max_depth is not a valid {kind} range"):
        parse_space({"max_depth": {"type": kind, "low": 10, "high": 2}})


def test_missing_bounds_is_a_user_error():
    with pytest.raises(UserError, match=r"study\.space\.lr .*low and high are required"):
        parse_space({"lr": {"type": "float", "low": 0.1}})


def test_non_numeric_bound_is_a_user_error():
    with pytest.raises(UserError, match=r"study\.space\.max_depth is not a valid int range"):
        parse_space({"max_depth": {"type": "int", "low": "two", "high": 5}})


def test_log_range_with_zero_low_is_a_user_error():
    with pytest.raises(UserError, match=r"study\.space\.lr is not a valid float range"):
        parse_space({"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}})


@pytest.mark.parametrize("choices", [[], None])
def test_empty_choices_is_a_user_error(choices):
    with pytest.raises(UserError, match=r"study\.space\.booster .*choices must be a non-empty"):
        parse_space({"booster": {"type": "categorical", "choices": choices}})


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        ({"type": "int", "low": 2, "high": 10, "grid": [3, 12]}, "12"),
        ({"type": "float", "low": 0.1, "high": 0.5, "grid": [0.05]}, "0.05"),
        ({"type": "int", "low": 2, "high": 10, "step": 2, "grid": [3]}, "3"),
    ],
)
def test_grid_value_outside_range_is_refused_when_the_grid_is_used(spec, bad):
    space = parse_space({"param": spec})  # other samplers never read the grid
    with pytest.raises(UserError, match=rf"study\.space\.param\.grid value {bad} lies outside"):
        space.grid()


def test_categorical_grid_value_not_a_choice_is_a_user_error():
    space = parse_space(
        {"booster": {"type": "categorical", "choices": ["gbtree", "dart"], "grid": ["gblinear"]}}
    )
    with pytest.raises(UserError, match=r"study\.space\.booster\.grid value 'gblinear'"):
        space.grid()


@pytest.mark.parametrize("grid", [[], "0.1"])
def test_grid_that_is_not_a_non_empty_list_is_a_user_error(grid):
    with pytest.raises(UserError, match=r"study\.space\.lr\.grid must be a non-empty list"):
        parse_space({"lr": {"type": "float", "low": 0.0, "high": 1.0, "grid": grid}})


def test_when_naming_a_later_or_unknown_parameter_is_a_user_error():
    with pytest.raises(UserError, match=r"study\.space\.rate_drop\.when names 'booster'"):
        parse_space(
            {
                "rate_drop": {
                    "type": "float",
                    "low": 0.0,
                    "high": 0.5,
                    "when": {"booster": "dart"},
                },
                "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
            }
        )


def test_when_that_is_not_a_mapping_is_a_user_error():
    with pytest.raises(UserError, match=r"study\.space\.rate_drop\.when must map"):
        parse_space(
            {
                "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
                "rate_drop": {"type": "float", "low": 0.0, "high": 0.5, "when": "dart"},
            }
        )


# --- grid values -------------------------------------------------------------


def test_grid_values_of_int_range():
    assert one({"type": "int", "low": 2, "high": 5}).grid_values() == (2, 3, 4, 5)


def test_grid_values_of_int_range_with_step():
    assert one({"type": "int", "low": 2, "high": 10, "step": 4}).grid_values() == (2, 6, 10)


def test_grid_values_of_float_range_with_step():
    values = one({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}).grid_values()
    assert values == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_grid_values_of_float_step_include_the_upper_bound_despite_rounding():
    values = one({"type": "float", "low": 0.1, "high": 0.5, "step": 0.1}).grid_values()
    assert values == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5))


def test_grid_values_of_categorical_are_its_choices():
    p = one({"type": "categorical", "choices": ["a", "b", "c"]})
    assert p.grid_values() == ("a", "b", "c")


def test_explicit_grid_wins_over_enumeration():
    p = one({"type": "int", "low": 2, "high": 10, "grid": [3, 6]})
    assert p.grid_values() == (3, 6)


def test_continuous_float_has_no_grid_values():
    assert one({"type": "float", "low": 0.0, "high": 1.0}).grid_values() is None


def test_space_grid_and_size():
    space = parse_space(
        {
            "depth": {"type": "int", "low": 2, "high": 4},
            "lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True, "grid": [0.05, 0.2]},
            "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
        }
    )
    assert space.grid() == {"depth": [2, 3, 4], "lr": [0.05, 0.2], "booster": ["gbtree", "dart"]}
    assert space.grid_size() == 3 * 2 * 2


def test_grid_refuses_a_continuous_float_and_says_how_to_fix():
    space = parse_space(
        {
            "depth": {"type": "int", "low": 2, "high": 4},
            "subsample": {"type": "float", "low": 0.5, "high": 1.0},
        }
    )
    with pytest.raises(UserError) as err:
        space.grid()
    message = str(err.value)
    assert "'subsample'" in message
    assert "study.space.subsample.grid=[...]" in message
    assert "step" in message


def test_grid_refuses_conditional_parameters():
    space = parse_space(
        {
            "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
            "rate_drop": {
                "type": "float",
                "low": 0.0,
                "high": 0.5,
                "grid": [0.1],
                "when": {"booster": "dart"},
            },
        }
    )
    with pytest.raises(UserError, match=r"'rate_drop' is conditional.*sampler=tpe"):
        space.grid()


def test_grid_works_with_optuna_grid_sampler():
    space = parse_space(
        {
            "depth": {"type": "int", "low": 1, "high": 3},
            "booster": {"type": "categorical", "choices": ["a", "b"]},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid(), seed=0))
    study.optimize(lambda t: float(len(space.suggest(t))), n_trials=space.grid_size())
    seen = {(t.params["depth"], t.params["booster"]) for t in study.trials}
    assert seen == {(d, b) for d in (1, 2, 3) for b in ("a", "b")}


# --- conditional parameters --------------------------------------------------


def _sample(space, n_trials=60):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sampled = []
    for _ in range(n_trials):
        trial = study.ask()
        sampled.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return study, sampled


def test_conditional_parameter_is_suggested_exactly_when_its_parent_matches():
    space = parse_space(
        {
            "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
            "rate_drop": {"type": "float", "low": 0.0, "high": 0.5, "when": {"booster": "dart"}},
            "max_depth": {"type": "int", "low": 2, "high": 6},
        }
    )
    study, sampled = _sample(space)
    boosters = [values["booster"] for values in sampled]
    assert {"gbtree", "dart"} <= set(boosters)  # both branches were exercised
    for values, trial in zip(sampled, study.trials, strict=True):
        assert ("rate_drop" in values) == (values["booster"] == "dart")
        assert ("rate_drop" in trial.params) == (trial.params["booster"] == "dart")
        assert "max_depth" in trial.params
        if "rate_drop" in values:
            assert 0.0 <= values["rate_drop"] <= 0.5


def test_conditional_on_a_list_of_values():
    space = parse_space(
        {
            "kind": {"type": "categorical", "choices": ["a", "b", "c"]},
            "x": {"type": "int", "low": 0, "high": 3, "when": {"kind": ["a", "c"]}},
        }
    )
    _, sampled = _sample(space)
    assert {v["kind"] for v in sampled} == {"a", "b", "c"}
    for values in sampled:
        assert ("x" in values) == (values["kind"] in ("a", "c"))


def test_nested_condition_is_inactive_when_its_parent_is_inactive():
    space = parse_space(
        {
            "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
            "sample_type": {
                "type": "categorical",
                "choices": ["uniform", "weighted"],
                "when": {"booster": "dart"},
            },
            "w": {"type": "float", "low": 0.0, "high": 1.0, "when": {"sample_type": "weighted"}},
        }
    )
    _, sampled = _sample(space, n_trials=80)
    assert any("w" in v for v in sampled)
    for values in sampled:
        expected = values["booster"] == "dart" and values.get("sample_type") == "weighted"
        assert ("w" in values) == expected


# --- fingerprint -------------------------------------------------------------


SPEC = {
    "max_depth": {"type": "int", "low": 2, "high": 10},
    "lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
}


def test_fingerprint_is_equal_for_equal_spaces():
    assert parse_space(SPEC).fingerprint() == parse_space(dict(SPEC)).fingerprint()


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("max_depth", {"high": 12}),
        ("lr", {"low": 0.02}),
        ("lr", {"log": False}),
        ("booster", {"choices": ["gbtree"]}),
    ],
)
def test_fingerprint_changes_when_the_space_changes(name, change):
    other = {**SPEC, name: {**SPEC[name], **change}}
    assert parse_space(other).fingerprint() != parse_space(SPEC).fingerprint()
