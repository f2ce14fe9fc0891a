import math

import numpy as np
import pytest

from hpo.errors import UserError
from hpo.metrics import REGISTRY, confusion, get_metric, metrics_for, score_all, to_labels

TP, FN, FP, TN = 40, 10, 5, 45
N = TP + FN + FP + TN


@pytest.fixture
def binary():
    """100 rows with TP=40, FN=10, FP=5, TN=45 once scores are cut at 0.5.

    Scores sit on both sides of the threshold and exactly on it (0.5 is positive).
    """
    y_true = np.array([1] * (TP + FN) + [0] * (FP + TN))
    scores = np.concatenate(
        [
            np.linspace(0.5, 0.99, TP),  # positives predicted positive (first one at 0.5)
            np.linspace(0.01, 0.499, FN),  # positives predicted negative
            np.linspace(0.5, 0.9, FP),  # negatives predicted positive
            np.linspace(0.0, 0.4999, TN),  # negatives predicted negative
        ]
    )
    return y_true, scores


def m(name, y_true, scores):
    return get_metric(name)(np.asarray(y_true), np.asarray(scores))


# --- binary classification ---------------------------------------------------


def test_binary_labels_use_a_half_threshold(binary):
    _, scores = binary
    labels = to_labels(scores)
    assert labels.sum() == TP + FP
    assert to_labels(np.array([0.4999, 0.5, 0.5001])).tolist() == [0, 1, 1]


def test_confusion_matrix_from_scores(binary):
    assert confusion(*binary).tolist() == [[TN, FP], [FN, TP]]


def test_precision(binary):
    assert m("precision", *binary) == pytest.approx(40 / 45)


def test_recall(binary):
    assert m("recall", *binary) == pytest.approx(0.8)


def test_f1(binary):
    p, r = 40 / 45, 0.8
    assert m("f1", *binary) == pytest.approx(2 * p * r / (p + r))


def test_specificity(binary):
    assert m("specificity", *binary) == pytest.approx(45 / 50)


def test_accuracy(binary):
    assert m("accuracy", *binary) == pytest.approx(0.85)


def test_balanced_accuracy(binary):
    assert m("balanced_accuracy", *binary) == pytest.approx((0.8 + 0.9) / 2)


def test_mcc(binary):
    expected = (TP * TN - FP * FN) / math.sqrt((TP + FP) * (TP + FN) * (TN + FP) * (TN + FN))
    assert m("mcc", *binary) == pytest.approx(expected)


def test_cohen_kappa(binary):
    observed = (TP + TN) / N
    chance = ((TP + FP) * (TP + FN) + (TN + FN) * (TN + FP)) / N**2
    assert m("cohen_kappa", *binary) == pytest.approx((observed - chance) / (1 - chance))


def test_roc_auc_reads_scores_not_labels():
    y = np.array([0, 0, 1, 1])
    # Every score is below 0.5, so the labels are all 0, but the ranking is perfect.
    assert m("roc_auc", y, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    # One of the four (positive, negative) pairs is mis-ordered.
    assert m("roc_auc", y, [0.1, 0.35, 0.3, 0.4]) == pytest.approx(3 / 4)


def test_average_precision():
    y = np.array([0, 1, 0, 1])
    # Ranked: 0.9 (pos), 0.6 (neg), 0.4 (pos), 0.1 (neg): precision 1 at recall .5, 2/3 at 1.
    assert m("average_precision", y, [0.1, 0.9, 0.6, 0.4]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_log_loss():
    y = np.array([1, 0])
    assert m("log_loss", y, [0.8, 0.3]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)


def test_specificity_of_an_all_negative_fold_predicted_negative_is_one():
    assert m("specificity", [0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)


# --- multi-class -------------------------------------------------------------


MC_TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
MC_LABELS = np.array([0, 1, 1, 1, 2, 0, 2])


def _probabilities(labels, k=3):
    """Rows whose argmax is ``labels`` but whose maximum stays below 0.5."""
    rows = np.full((len(labels), k), 0.3)
    rows[np.arange(len(labels)), labels] = 0.4
    return rows


def _f1_by_hand(y, p, cls):
    tp = np.sum((y == cls) & (p == cls))
    fp = np.sum((y != cls) & (p == cls))
    fn = np.sum((y == cls) & (p != cls))
    return 2 * tp / (2 * tp + fp + fn)


def test_multiclass_labels_are_the_argmax():
    assert to_labels(_probabilities(MC_LABELS)).tolist() == MC_LABELS.tolist()


def test_multiclass_f1_is_the_macro_mean_of_per_class_f1():
    per_class = [_f1_by_hand(MC_TRUE, MC_LABELS, c) for c in range(3)]
    assert per_class == pytest.approx([0.5, 0.8, 0.8])
    assert m("f1", MC_TRUE, _probabilities(MC_LABELS)) == pytest.approx(np.mean(per_class))


def test_multiclass_accuracy():
    assert m("accuracy", MC_TRUE, _probabilities(MC_LABELS)) == pytest.approx(5 / 7)


def _auc_by_hand(pos, neg):
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    return sum(pairs) / len(pairs)


def test_multiclass_roc_auc_is_the_one_vs_rest_macro_mean():
    scores = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.3, 0.4, 0.3],
            [0.2, 0.5, 0.3],
            [0.5, 0.3, 0.2],
            [0.1, 0.2, 0.7],
            [0.2, 0.2, 0.6],
            [0.4, 0.1, 0.5],
        ]
    )
    per_class = []
    for c in range(3):
        is_c = np.equal(MC_TRUE, c)
        per_class.append(_auc_by_hand(scores[is_c, c], scores[~is_c, c]))
    expected = np.mean(per_class)
    assert m("roc_auc", MC_TRUE, scores) == pytest.approx(expected)
    assert 0.5 < expected < 1.0


def test_multiclass_f1_stays_macro_when_the_fold_holds_only_classes_0_and_1():
    y = np.array([0, 1, 0, 1])
    labels = np.array([0, 1, 2, 1])
    per_class = [_f1_by_hand(y, labels, c) for c in range(3)]  # 2/3, 1, 0
    assert m("f1", y, _probabilities(labels)) == pytest.approx(np.mean(per_class))


# --- regression --------------------------------------------------------------


Y = np.array([3.0, -0.5, 2.0, 7.0])
P = np.array([2.5, 0.0, 2.0, 8.0])


def test_mse():
    assert m("mse", Y, P) == pytest.approx((0.25 + 0.25 + 0 + 1) / 4)


def test_rmse():
    assert m("rmse", Y, P) == pytest.approx(math.sqrt((0.25 + 0.25 + 0 + 1) / 4))


def test_mae():
    assert m("mae", Y, P) == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)


def test_r2():
    ss_res = np.sum((Y - P) ** 2)
    ss_tot = np.sum((Y - Y.mean()) ** 2)
    assert m("r2", Y, P) == pytest.approx(1 - ss_res / ss_tot)


def test_mape():
    assert m("mape", Y, P) == pytest.approx((0.5 / 3 + 0.5 / 0.5 + 0 + 1 / 7) / 4)


def test_smape_counts_a_zero_zero_pair_as_perfect():
    # ratios: 0/0 -> 0, 2*|3-1|/(1+3) = 1, 0
    assert m("smape", [0.0, 1.0, 2.0], [0.0, 3.0, 2.0]) == pytest.approx(1 / 3)


def test_smape_is_two_for_opposite_signs():
    assert m("smape", [1.0, -2.0], [-1.0, 2.0]) == pytest.approx(2.0)


def test_huber_is_quadratic_below_delta_and_linear_above():
    y = np.zeros(4)
    p = np.array([0.5, -0.5, 0.0, 3.0])
    # 0.5 * 0.5**2 twice, 0, and 1 * (3 - 0.5) for the outlier
    assert m("huber", y, p) == pytest.approx((0.125 + 0.125 + 0 + 2.5) / 4)


def test_huber_is_continuous_at_delta():
    assert m("huber", [0.0], [1.0]) == pytest.approx(0.5)


def test_perfect_regression():
    assert m("rmse", Y, Y) == 0.0
    assert m("r2", Y, Y) == pytest.approx(1.0)


# --- registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("f1", "maximize"),
        ("roc_auc", "maximize"),
        ("log_loss", "minimize"),
        ("rmse", "minimize"),
        ("mae", "minimize"),
        ("r2", "maximize"),
    ],
)
def test_directions(name, direction):
    assert get_metric(name).direction == direction


def test_get_metric_for_its_task():
    assert get_metric("f1", "classification").name == "f1"
    assert get_metric("rmse", "regression").task == "regression"


def test_unknown_metric_lists_the_valid_names():
    with pytest.raises(UserError, match="unknown metric 'f2'") as err:
        get_metric("f2")
    for name in REGISTRY:
        assert name in str(err.value)


def test_metric_for_the_wrong_task_lists_that_tasks_metrics():
    with pytest.raises(UserError, match="'rmse' is not for classification") as err:
        get_metric("rmse", "classification")
    listed = str(err.value).split("one of ", 1)[1]
    assert "f1" in listed
    assert "mae" not in listed


def test_metrics_for_splits_the_registry_by_task():
    classification = {mt.name for mt in metrics_for("classification")}
    regression = {mt.name for mt in metrics_for("regression")}
    assert {"f1", "roc_auc", "mcc"} <= classification
    assert {"rmse", "huber", "smape"} <= regression
    assert not classification & regression
    assert classification | regression == set(REGISTRY)


def test_score_all_computes_every_metric_of_the_task(binary):
    scores = score_all("classification", *binary)
    assert set(scores) == {mt.name for mt in metrics_for("classification")}
    assert scores["accuracy"] == pytest.approx(0.85)


def test_score_all_regression():
    scores = score_all("regression", Y, P)
    assert set(scores) == {mt.name for mt in metrics_for("regression")}
    assert scores["mae"] == pytest.approx(0.5)


def test_score_all_skips_undefined_metrics_instead_of_raising():
    y = np.zeros(4, dtype=int)  # one class: ROC-AUC is undefined
    scores = score_all("classification", y, np.array([0.1, 0.2, 0.3, 0.6]))
    assert "roc_auc" not in scores
    assert scores["accuracy"] == pytest.approx(0.75)
    assert all(math.isfinite(v) for v in scores.values())
