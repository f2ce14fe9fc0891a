"""Honest numbers for a study's winner, from what the trials already predicted.

The best cross-validated score of many trials is an optimistic estimate of the
winner: among many configurations of similar quality, the one that looks best
on these folds is partly the one that was lucky on them. Two remedies that
need no refits, only the trials' out-of-fold predictions and fold scores:

- ``bbc_cv``: Bootstrap Bias-Corrected CV (Tsamardinos, Greasidou and
  Borboudakis 2018, "Bootstrapping the out-of-sample predictions for efficient
  and accurate cross-validation", Machine Learning 107). It bootstraps the
  *selection* of the winner, so the luck of picking the best is paid for.
- ``corrected_t_test`` and ``indistinguishable``: is the winner really better
  than the runners-up? The corrected resampled t-test of Nadeau and Bengio
  (2003, "Inference for the generalization error", Machine Learning 52) on
  paired fold scores.

Every metric is called as ``metric(y_true, scores)``. A black-box metric is
called once per configuration and bootstrap, and scikit-learn's metrics spend
0.4-3 ms a call checking their input and finding the labels (``f1_score`` on
569 rows: 2.9 ms), so 50 configurations x 1000 bootstraps would take minutes.
The registry's metrics (``hpo.metrics``) that are functions of per-class counts
(accuracy, precision, recall, F1, specificity, balanced accuracy, MCC), of a
mean of per-row losses (MSE, RMSE, MAE, MAPE, sMAPE, Huber, log loss) or of a
binary ranking (ROC AUC, average precision) are computed for all bootstraps at
once instead, and give the same values: a sample drawn with replacement is its
rows weighted by how often each was drawn (``tests/hpo/estimates/test_fast_scores.py``
compares each with the metric). The others (R², multi-class ROC AUC and
average precision, any other callable) are called.

One module per job, each importing only those above it:

- ``scoring``: the ``Scorer`` of bootstrap samples, and ``generic_scorer``, which calls
  the metric on each sample's rows
- ``fast_scores``: ``fast_scorer``, the registry's metrics for all samples at once
- ``bbc``: ``Estimate``, ``bbc_cv``: the bootstrap, skipped samples and why
- ``ttest``: ``TTest``, ``corrected_t_test``, ``indistinguishable`` (imports none of the others)
"""

from hpo.estimates.bbc import Estimate, bbc_cv
from hpo.estimates.scoring import MetricFn, Scorer
from hpo.estimates.ttest import TTest, corrected_t_test, indistinguishable

__all__ = [
    "Estimate",
    "MetricFn",
    "Scorer",
    "TTest",
    "bbc_cv",
    "corrected_t_test",
    "indistinguishable",
]
