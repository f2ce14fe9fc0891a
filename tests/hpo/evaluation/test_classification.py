"""classification_report (hpo/evaluation/classification.py): numbers and curves vs sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from hpo.evaluation import choose_threshold, classification_report
from hpo.metrics import score_all


def test_at_a_half_the_metrics_are_the_ones_logged_per_trial(binary) -> None:
    y, p = binary
    report = classification_report(y, p)
    expected = score_all("classification", y, p)
    assert report.metrics.keys() == expected.keys()
    assert report.metrics == pytest.approx(expected)


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_the_metrics_at_a_threshold_match_sklearn(binary, threshold: float) -> None:
    y, p = binary
    called = (p >= threshold).astype(int)
    tn, fp, _, _ = skm.confusion_matrix(y, called).ravel()
    expected = {
        "accuracy": skm.accuracy_score(y, called),
        "precision": skm.precision_score(y, called),
        "recall": skm.recall_score(y, called),
        "f1": skm.f1_score(y, called),
        "specificity": tn / (tn + fp),
        "balanced_accuracy": skm.balanced_accuracy_score(y, called),
        "cohen_kappa": skm.cohen_kappa_score(y, called),
        "mcc": skm.matthews_corrcoef(y, called),
        "roc_auc": skm.roc_auc_score(y, p),
        "average_precision": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, p),
    }
    report = classification_report(y, p, threshold=threshold)
    assert report.metrics == pytest.approx(expected)
    table = report.figures["metrics"].data[0].cells.values
    assert table[1][table[0].index("mcc")] == f"{expected['mcc']:.4f}"


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_the_confusion_matrix_counts_every_row_at_the_threshold(binary, threshold: float) -> None:
    y, p = binary
    z = np.asarray(
        classification_report(y, p, threshold=threshold).figures["confusion_matrix"].data[0].z
    )
    assert z.sum() == len(y)
    assert z.tolist() == skm.confusion_matrix(y, p >= threshold).tolist()


def test_the_curves_are_sklearns(binary) -> None:
    y, p = binary
    figures = classification_report(
        y, p, threshold=0.4, class_names=["malignant", "benign"]
    ).figures
    fpr, tpr, _ = skm.roc_curve(y, p)
    roc = figures["roc"].data[0]
    assert np.allclose(roc.x, fpr) and np.allclose(roc.y, tpr)
    assert roc.name == f"class 1 (benign): AUC {skm.roc_auc_score(y, p):.3f}"
    point = figures["roc"].data[-1]  # the operating point at the threshold
    tn, fp, fn, tp = skm.confusion_matrix(y, p >= 0.4).ravel()
    assert (point.x[0], point.y[0]) == pytest.approx((fp / (fp + tn), tp / (tp + fn)))
    precision, recall, _ = skm.precision_recall_curve(y, p)
    pr = figures["precision_recall"].data[0]
    assert np.allclose(pr.x, recall) and np.allclose(pr.y, precision)
    observed, predicted = calibration_curve(y, p, n_bins=10)
    calibration = figures["calibration"].data[0]
    assert np.allclose(calibration.x, predicted) and np.allclose(calibration.y, observed)
    assert sum(calibration.customdata) == len(y)  # the rows of its bins
    assert figures["calibration"].data[-1].name == "perfectly calibrated"


def test_a_cost_threshold_adds_its_curve_with_the_choice_marked(binary) -> None:
    y, p = binary
    choice = choose_threshold(y, p, cost_fp=1.0, cost_fn=5.0)
    report = classification_report(y, p, threshold=choice)
    assert "cost" not in classification_report(y, p).figures
    curve, chosen, at_half = report.figures["cost"].data
    assert np.array_equal(curve.x, choice.thresholds) and np.array_equal(curve.y, choice.costs)
    assert (chosen.x[0], chosen.y[0]) == (choice.value, choice.cost)
    assert (at_half.x[0], at_half.y[0]) == (0.5, choice.cost_at_half)
    z = np.asarray(report.figures["confusion_matrix"].data[0].z)
    assert z.tolist() == skm.confusion_matrix(y, p >= choice.value).tolist()
    assert report.metrics["recall"] == pytest.approx(skm.recall_score(y, p >= choice.value))


def test_every_title_says_what_it_was_computed_on(binary) -> None:
    y, p = binary
    choice = choose_threshold(y, p, 1.0, 5.0)
    report = classification_report(y, p, threshold=choice, source="test rows")
    assert set(report.figures) == {
        "confusion_matrix",
        "roc",
        "precision_recall",
        "calibration",
        "metrics",
        "cost",
    }
    for name, figure in report.figures.items():
        assert "test rows, 569 rows" in figure.layout.title.text, name
    assert f"threshold {choice.value:.3g}" in report.figures["confusion_matrix"].layout.title.text


def test_a_multi_class_report_takes_the_argmax_and_plots_each_class(three_classes) -> None:
    y, P = three_classes
    report = classification_report(y, P, class_names=["a", "b", "c"])
    expected = score_all("classification", y, P)
    assert report.metrics.keys() == expected.keys()
    assert report.metrics == pytest.approx(expected)
    assert report.metrics["f1"] == pytest.approx(skm.f1_score(y, P.argmax(1), average="macro"))
    z = np.asarray(report.figures["confusion_matrix"].data[0].z)
    assert z.sum() == len(y)
    assert z.tolist() == skm.confusion_matrix(y, P.argmax(1)).tolist()
    roc = report.figures["roc"].data
    assert [t.name.split(":")[0] for t in roc] == ["a", "b", "c", "chance"]
    fpr, tpr, _ = skm.roc_curve(y == 2, P[:, 2])
    assert np.allclose(roc[2].x, fpr) and np.allclose(roc[2].y, tpr)
    names = [t.name for t in report.figures["calibration"].data]
    assert names == ["all classes pooled", "a", "b", "c", "perfectly calibrated"]
    assert "cost" not in report.figures


def test_a_threshold_is_refused_for_a_multi_class_task(three_classes) -> None:
    y, P = three_classes
    with pytest.raises(ValueError, match="binary"):
        classification_report(y, P, threshold=0.3)


def test_binary_labels_must_be_zero_and_one() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        classification_report(np.array([1, 2, 2]), np.array([0.2, 0.6, 0.9]))
