"""``python -m hpo --help`` answered from file names, before Hydra or Optuna is imported.

Hydra's own help composes the whole config to print it, deep-copying every
stored study about 90 times: 3-10 s on this machine for a page of group names.
``--help`` lists the groups and their options (the YAML files under conf/
and the study folders) with the header and footer from conf/config.yaml; with
overrides (``study=NAME --help``) their composed config follows, as ``--cfg
job`` composes it: only the chosen options, about a second.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hpo.paths import CONF_DIR, study_dirs

FLAGS = ("--help", "-h")
USAGE = "Usage: python -m hpo [study=NAME] [GROUP=OPTION ...] [key=value ...] [--cfg job]"


COMPOSED = "== Composed config for these overrides =="


def wanted(argv: list[str]) -> bool:
    """A bare --help: nothing to compose, so no reason to start Hydra."""
    return len(argv) == 1 and argv[0] in FLAGS


def with_overrides(argv: list[str]) -> bool:
    """--help among overrides: the page and their composed config."""
    return len(argv) > 1 and any(arg in FLAGS for arg in argv) and "--cfg" not in argv


def as_cfg_job(argv: list[str]) -> list[str]:
    """``argv`` with --help replaced by --cfg job, which composes only the chosen options."""
    return [*(arg for arg in argv if arg not in FLAGS), "--cfg", "job"]


def groups() -> dict[str, list[str]]:
    """Each config group and its options, as Hydra lists them: conf/<group>/*.yaml, and
    ``study`` from every study folder."""
    found: dict[str, set[str]] = {
        folder.name: {p.stem for p in folder.glob("*.yaml")}
        for folder in CONF_DIR.iterdir()
        if folder.is_dir() and folder.name != "hydra"
    }
    found["study"] = {p.stem for folder in study_dirs() for p in folder.glob("*.yaml")}
    return {name: sorted(options) for name, options in sorted(found.items()) if options}


def text(config: Path = CONF_DIR / "config.yaml") -> str:
    """The help page: header, usage, groups and options, where the composed config is,
    footer."""
    shown = yaml.safe_load(config.read_text())["hydra"]["help"]
    listed = [f"{name}: {', '.join(options)}" for name, options in groups().items()]
    return "\n".join(
        [
            shown["header"].rstrip(),
            "",
            USAGE,
            "",
            "== Studies and options (GROUP=OPTION) ==",
            *listed,
            "",
            "A study's composed config: python -m hpo study=NAME --cfg job (or study=NAME --help)",
            "",
            shown["footer"].rstrip(),
        ]
    )
