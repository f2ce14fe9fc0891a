"""docker/nightly: each scheduling file (cron, systemd, Kubernetes, compose) runs a valid night.

Beside test_deploy.py (docker/); the night itself is tested in tests/hpo/schedule/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from hpo.config import CONF_DIR

NIGHTLY = Path(__file__).parents[1] / "docker" / "nightly"


def scheduled_commands() -> dict[str, list[str]]:
    """The hpo arguments each scheduling file runs."""
    cron = next(line for line in (NIGHTLY / "crontab").read_text().splitlines() if "-m hpo" in line)
    service = next(
        line
        for line in (NIGHTLY / "hpo-nightly@.service").read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    job = yaml.safe_load((NIGHTLY / "cronjob.yaml").read_text())
    compose = yaml.safe_load((NIGHTLY / "compose.yaml").read_text())
    return {
        "crontab": cron.split("-m hpo", 1)[1].split(">>")[0].split(),
        "systemd": service.split("-m hpo", 1)[1].replace("%i", "xgb_f1").split(),
        "cronjob": job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
        "compose": compose["services"]["nightly"]["environment"]["HPO_NIGHTLY_ARGS"].split(),
    }


@pytest.mark.parametrize("where", ["crontab", "systemd", "cronjob", "compose"])
def test_each_scheduling_file_runs_a_nightly_study_the_config_accepts(where: str) -> None:
    args = scheduled_commands()[where]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=args)
    assert cfg.schedule.kind == "nightly"
    assert cfg.study.name == "xgb_f1" and cfg.study.timeout > 0


def test_the_cronjob_never_runs_two_nights_at_once() -> None:
    job = yaml.safe_load((NIGHTLY / "cronjob.yaml").read_text())
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_suggested_mlflow_ui_is_published_on_loopback_only() -> None:
    """The UI has no authentication: a comment that publishes it on every interface of the
    host is an invitation (issue 11, defect 9)."""
    text = (NIGHTLY / "compose.yaml").read_text()
    published = [
        w for line in text.splitlines() for w in line.split() if ":5000:" in w or w == "5000:5000"
    ]
    assert published == ["127.0.0.1:5000:5000"], published
