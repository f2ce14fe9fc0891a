"""One line for every user mistake, shared by the two entry points (hpo, hpo.check).

Hydra and OmegaConf raise long, nested errors for a mistyped group option or
key; a person needs the key at fault and what to type instead.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from hydra.errors import MissingConfigException

from hpo.config import suggestion
from hpo.secrets import mask


def fail(message: str, status: int = 2) -> NoReturn:
    print(f"error: {mask(message)}", file=sys.stderr)
    sys.exit(status)


def missing_option(err: MissingConfigException) -> str:
    missing = err.missing_cfg_file or ""
    if "/" in missing:
        group, option = missing.split("/", 1)
        options = ", ".join(err.options or [])
        return f"unknown {group} '{option}': choose {group}= one of {options}"
    return first_line(err)


RENAMED = {"finish": "finish=false is now trials_only=true (this process runs trials only)"}


def composition_error(err: BaseException) -> str:
    """One line for a bad override: the key or value at fault and what to do."""
    text = str(err)
    if text.startswith("Could not override '"):
        key = text.split("'")[1]
        if key in RENAMED:
            return f"unknown key '{key}': {RENAMED[key]}"
        return f"unknown key '{key}': {suggestion(key)}"
    return first_line(err) + " (see --help for groups and keys)"


def first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    cause = err.__cause__
    if len(lines) <= 1 and cause is not None and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])
    return "; ".join(lines[:2]) if lines else type(err).__name__


LOOK_KEYS = ("study", "study.name", "storage", "tracking")  # what finds a study's stores


def look_command(argv: list[str]) -> str:
    """``python -m hpo.ui`` with the overrides of ``argv`` that find the study's stores
    (the study, its storage and tracking), so the command shown opens this very study."""
    kept = [arg for arg in argv if _key(arg) in LOOK_KEYS or _key(arg).startswith(LOOK_PREFIXES)]
    return " ".join(["python -m hpo.ui", *(mask(arg) for arg in kept)])


LOOK_PREFIXES = ("storage.", "tracking.")


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")
