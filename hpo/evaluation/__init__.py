"""The evaluation report of one model: its metrics and plots, from predictions without refits.

Scores follow hpo/metrics.py: P(class 1) for binary tasks, an (n, k) probability
matrix for multi-class tasks (labels 0..k-1), the prediction for regression.
The numbers come from the metric registry (``hpo.metrics``), so they match the
ones logged per trial; only the decision threshold of a binary task may differ
from 0.5, chosen by cost (``choose_threshold``) on out-of-fold predictions.

A ``Report`` holds the metrics and plotly figures; ``Report.html()`` gives one
standalone page per figure, ``page`` one page of sections of figures with
plotly.js inlined once (the study's report on its parent run).

One module per job, each importing only those above it:

- ``report``: ``Report``, ``ARTIFACT_DIR``, the metrics table and the titles every figure shares
- ``threshold``: ``Threshold``, ``choose_threshold`` (least expected cost), the cost figure
- ``classification``: ``classification_report``: confusion matrix, ROC, precision-recall,
  calibration
- ``regression``: ``regression_report``: predicted vs actual, residuals

Example:
    >>> import numpy as np
    >>> y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    >>> choice = choose_threshold(y, p, cost_fp=1.0, cost_fn=10.0)
    >>> choice.value, choice.cost, choice.cost_at_half
    (0.4, 0.25, 2.75)
    >>> report = classification_report(y, p, threshold=choice)
    >>> sorted(report.figures)
    ['calibration', 'confusion_matrix', 'cost', 'metrics', 'precision_recall', 'roc']
"""

from hpo.evaluation.classification import classification_report
from hpo.evaluation.regression import regression_report
from hpo.evaluation.report import ARTIFACT_DIR, Report, Section, page
from hpo.evaluation.threshold import Threshold, choose_threshold

__all__ = [
    "ARTIFACT_DIR",
    "Report",
    "Section",
    "Threshold",
    "choose_threshold",
    "classification_report",
    "page",
    "regression_report",
]
