"""benchmarks/sample_efficiency.py's arithmetic on hand-made trial lists (no study is run):
best-so-far from COMPLETE trials only, trials to reach a target, medians over seeds."""

from __future__ import annotations

import optuna

from benchmarks.sample_efficiency import (
    best_so_far,
    checkpoints,
    in_half,
    median_curve,
    median_of,
    median_reach,
    setting_differences,
    trials_to_reach,
)

C, P, F = "COMPLETE", "PRUNED", "FAIL"


def test_best_so_far_keeps_the_best_complete_value_in_the_metrics_direction() -> None:
    trials = [(C, 0.5), (C, 0.7), (C, 0.6), (C, 0.9)]
    assert best_so_far(trials, maximize=True) == [0.5, 0.7, 0.7, 0.9]
    assert best_so_far(trials, maximize=False) == [0.5, 0.5, 0.5, 0.5]


def test_pruned_and_failed_trials_spend_a_trial_but_are_never_a_best() -> None:
    # Optuna gives a pruned trial its last intermediate value: better here, yet not a best
    trials = [(P, 0.99), (F, None), (C, 0.6), (P, 0.95), (C, 0.7)]
    assert best_so_far(trials, maximize=True) == [None, None, 0.6, 0.6, 0.7]
    assert best_so_far([(P, 10.0), (C, 50.0), (P, 1.0)], maximize=False) == [None, 50.0, 50.0]


def test_trials_to_reach_counts_every_trial_spent_up_to_the_first_as_good() -> None:
    series = best_so_far([(P, 0.9), (C, 0.5), (C, 0.8), (C, 0.85)], maximize=True)
    assert trials_to_reach(series, 0.8, maximize=True) == 3
    assert trials_to_reach(series, 0.85, maximize=True) == 4
    assert trials_to_reach(series, 0.86, maximize=True) is None
    rmse = best_so_far([(C, 60.0), (C, 58.0), (C, 59.0), (C, 55.0)], maximize=False)
    assert trials_to_reach(rmse, 58.5, maximize=False) == 2
    assert trials_to_reach(rmse, 50.0, maximize=False) is None


def test_median_curve_counts_a_seed_without_a_complete_trial_as_the_worst() -> None:
    curves: list[list[float | None]] = [[None, 0.6, 0.8], [0.5, 0.5, 0.9], [None, 0.7, 0.7]]
    assert median_curve(curves, maximize=True) == [None, 0.6, 0.8]
    # minimizing, the worst is high: two Nones of three still leave no median
    assert median_curve([[None, 3.0], [2.0, 2.0], [None, 1.0]], maximize=False) == [None, 2.0]
    assert median_curve([[None, 3.0], [2.0, 2.0], [4.0, 1.0]], maximize=False) == [4.0, 2.0]


def test_median_over_an_even_number_of_seeds_averages_the_middle_two() -> None:
    assert median_of([1.0, 2.0, 4.0, 9.0], none_is=float("inf")) == 3.0
    assert median_of([1.0, None], none_is=float("inf")) is None
    assert median_of([], none_is=float("inf")) is None


def test_median_reach_ranks_never_last_and_counts_the_seeds_that_reached() -> None:
    assert median_reach([4, None, 2, 10, None]) == (10, 3)
    assert median_reach([None, None, 3]) == (None, 1)
    assert median_reach([5, 7, 6]) == (6, 3)


def test_in_half_is_at_most_half_the_budget() -> None:
    assert in_half(15, 30) and in_half(7.5, 15)
    assert not in_half(16, 30)
    assert not in_half(None, 30)


def test_checkpoints_every_five_trials_and_the_budget() -> None:
    assert checkpoints(20) == [5, 10, 15, 20]
    assert checkpoints(22) == [5, 10, 15, 20, 22]
    assert checkpoints(3) == [3]


def test_setting_differences_names_the_settings_that_differ_and_not_the_seed() -> None:
    tpe = optuna.samplers.TPESampler
    assert setting_differences(tpe(seed=0), tpe(seed=1)) == []
    found = setting_differences(tpe(seed=0, n_startup_trials=20), tpe(seed=0))
    assert found == ["n_startup_trials: 20 vs 10"]
    assert setting_differences(optuna.pruners.MedianPruner(), optuna.pruners.NopPruner()) == [
        "class: MedianPruner vs NopPruner"
    ]
