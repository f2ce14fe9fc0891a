"""Where the project's configs and studies live, without importing Hydra.

``python -m hpo --help`` (hpo/usage.py) lists the config groups from these folders
before anything heavy is imported; hpo/config.py composes from the same ones.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_DIR / "conf"
STUDIES_DIR = REPO_DIR / "studies"


def study_dirs() -> list[Path]:
    """The folders studies are read from: the project's, then ./studies and $HPO_STUDIES_DIR."""
    dirs = [STUDIES_DIR, Path.cwd() / "studies"]
    if extra := os.environ.get("HPO_STUDIES_DIR"):
        dirs.extend(Path(p) for p in extra.split(os.pathsep))
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in unique:
            unique.append(d.resolve())
    return unique
