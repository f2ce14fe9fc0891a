"""The nightly report (hpo/schedule/history.py): every night charted, promotions and failures."""

from __future__ import annotations

import mlflow
import pytest

from tests.hpo.schedule.helpers import NIGHTS, REPORT, Nights

pytestmark = pytest.mark.slow


def test_the_report_charts_every_night_promotions_and_failures(nights: Nights) -> None:
    page = mlflow.artifacts.load_text(f"runs:/{nights.ledger()[NIGHTS[3]].info.run_id}/{REPORT}")
    assert "Failed nights: 2024-05-04 (StudyStopped: 2 trials in a row failed" in page
    assert "promotions: 2024-05-01, 2024-05-02" in page
    assert "plotly" in page and "Best value per night" in page
    best = [nights.ledger()[night].data.metrics["best_value"] for night in NIGHTS[:3]]
    assert best == pytest.approx([nights.study(n).best_value for n in NIGHTS[:3]])
    tonight = mlflow.artifacts.load_text(f"runs:/{nights.parent(NIGHTS[2]).info.run_id}/{REPORT}")
    assert "Failed nights: none" in tonight
