"""What a user sees, in a real browser (headless Chromium driven by Playwright): over a
finished xgb_f1 study with a pruned trial, the runs table python -m hpo.ui lands on, the
study's report, the best model's signature and optuna-dashboard's study page.

Screenshots go to HPO_TEST_ARTIFACTS (CI keeps them), else to the test's tmp_path.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hpo.config import Config
from hpo.names import MODEL_URI_TAG
from hpo.runner import run
from hpo.ui import servers
from tests.hpo.helpers import ALWAYS_PRUNE
from tests.hpo.runner.helpers import FAST_XGB, runs
from tests.hpo.ui.conftest import free_port
from tests.hpo.ui.test_command import UI, URL_LINE, stores

CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 90_000  # the first page of MLflow's UI loads its bundle: slow on a busy machine


def browser_or_skip() -> None:
    """Skip without Chromium or Playwright, unless HPO_REQUIRE_BROWSER=1 (then fail)."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = missing or "playwright is not installed (pip install playwright)"
    if missing is None:
        return
    if os.environ.get("HPO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HPO_REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(missing)


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HPO_TEST_ARTIFACTS", tmp_path)) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def xgb_study(make_cfg) -> Config:
    """xgb_f1: three complete trials, then a fourth that is pruned (the study resumed)."""
    cfg = make_cfg("study=xgb_f1", "study.n_trials=3", "pruner=none", *FAST_XGB, "n_jobs=1")
    run(cfg)
    name = f"study.name={cfg.study.name}"
    resumed = make_cfg("study=xgb_f1", name, "study.n_trials=4", *ALWAYS_PRUNE, *FAST_XGB)
    run(resumed)
    return cfg


@pytest.mark.slow
@pytest.mark.browser
def test_a_user_sees_the_runs_report_model_and_dashboard(xgb_study: Config, tmp_path: Path) -> None:
    browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    parent, _ = runs(xgb_study)
    model_id = parent.data.tags[MODEL_URI_TAG].removeprefix("models:/")
    port, dashboard_port = free_port(), free_port()
    ports = [f"port={port}", f"dashboard_port={dashboard_port}"]
    ui = UI(*stores(xgb_study), *ports, "--dashboard", cwd=tmp_path)
    match = URL_LINE.match(ui.line())
    assert match, ui.err
    url = match.group(2)
    assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/")
    dashboard = ui.line().split(": ", 1)[1].split()[0]
    shots = screenshots(tmp_path)
    experiment = url.split("/experiments/")[1].split("/")[0]
    base = f"http://127.0.0.1:{port}/#/experiments/{experiment}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 2400, "height": 900})
            page.set_default_timeout(WAIT_MS)

            page.goto(url)  # the runs table: every trial a row, the parent, the metric
            for number in range(3):
                page.get_by_text(f"trial-{number:04d}", exact=True).wait_for()
            page.get_by_text("trial-0003-pruned", exact=True).wait_for()  # marked
            page.get_by_text(xgb_study.study.name, exact=True).first.wait_for()  # the parent
            header = page.get_by_role("columnheader")
            expect(header.filter(has_text="f1_std").first).to_be_visible()  # the metric's
            expect(header.filter(has_text="max_depth").first).to_be_visible()  # a parameter
            page.screenshot(path=shots / "runs_table.png")

            page.goto(f"{base}/runs/{parent.info.run_id}/artifacts/report.html")
            plot = page.frame_locator("iframe").locator(".js-plotly-plot").first
            plot.wait_for()  # plotly drew a figure from the page's own copy of plotly.js
            page.screenshot(path=shots / "report.png")

            page.goto(f"{base}/models/{model_id}/artifacts")
            page.get_by_text("MLmodel", exact=True).click()
            page.get_by_text("mean radius").first.wait_for()  # a column name in the signature
            page.screenshot(path=shots / "model_signature.png")

            page.goto(dashboard)
            page.get_by_text(xgb_study.study.name).first.wait_for()
            page.locator(".js-plotly-plot").first.wait_for()  # its history plot, drawn
            page.screenshot(path=shots / "optuna_dashboard.png")
            browser.close()
    finally:
        status = ui.stop(signal.SIGINT)
    assert status == 0
    servers.require_free(port, "port")
    servers.require_free(dashboard_port, "dashboard_port")
