"""Are the packages that computed the trial's value the ones installed now?

Two records can say which versions a study ran with, best first:

- tags on the parent run, one per distribution, under the prefix
  ``hpo.names.VERSION_PREFIX``, written when the parent run is created
  (hpo/runner/opening.py, from hpo/versions.py);
- the best model's ``requirements.txt``, pinned to the versions installed
  when the study finished (hpo/tracking/models.py ``pinned``): only the
  packages the objective names (``Objective.requirements``).

With neither, the versions installed now are said, so a reader knows what the
replay ran on. MLflow's own pins are left out: it records, it does not score.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo.names import MODEL_URI_TAG, VERSION_PREFIX
from hpo.versions import installed, watched_installed

NOT_SCORING = ("mlflow", "mlflow-skinny")  # in every model's requirements


@dataclass
class Versions:
    """Each recorded package whose installed version differs, and what was compared."""

    differs: list[str] = field(default_factory=list)
    note: str = ""


def check(client: MlflowClient, parent: Run) -> Versions:
    recorded, source = recorded_versions(client, parent)
    if not recorded:
        shown = ", ".join(f"{dist} {v}" for dist, v in watched_installed())
        return Versions(note=f"package versions not recorded (installed: {shown})")
    shown = ", ".join(f"{dist} {v}" for dist, v in sorted(recorded.items()))
    found = Versions(note=f"{shown} as recorded ({source})")
    for dist, then in sorted(recorded.items()):
        now = installed(dist)
        if now is None:
            found.differs.append(f"{dist} {then} recorded, not installed")
        elif public(now) != public(then):
            found.differs.append(f"{dist} {then} recorded, {now} installed")
    return found


def recorded_versions(client: MlflowClient, parent: Run) -> tuple[dict[str, str], str]:
    """{distribution: version} as the study recorded them, and where; empty: nowhere."""
    tags = parent.data.tags
    prefix = VERSION_PREFIX
    tagged = {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}
    if tagged:
        return tagged, "tags on the study's run"
    uri = tags.get(MODEL_URI_TAG)
    pins = model_requirements(client, uri) if uri else {}
    return pins, "the best model's requirements"


def model_requirements(client: MlflowClient, uri: str) -> dict[str, str]:
    """The ``name==version`` pins of a logged model (``models:/m-...``), MLflow's left out."""
    model_id = uri.removeprefix("models:/")
    if "/" in model_id:  # a registry URI (name/version), not the study's own logged model
        return {}
    try:
        location = client.get_logged_model(model_id).artifact_location
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{location}/requirements.txt",
                dst_path=folder,
                tracking_uri=str(client.tracking_uri),
            )
            text = Path(path).read_text()
    except (MlflowException, OSError):
        return {}
    pins = {}
    for line in text.splitlines():
        name, sep, pinned = line.split("#")[0].strip().partition("==")
        if sep and name.strip().lower() not in NOT_SCORING:
            pins[name.strip()] = pinned.strip()
    return pins


def public(text: str) -> str:
    """A version without its local tag: torch's ``2.13.0+cpu`` is pinned as ``2.13.0``."""
    return text.split("+")[0].strip()
