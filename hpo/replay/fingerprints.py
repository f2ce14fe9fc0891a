"""Is the replay scored on the data and folds the trial was? Against what the study recorded.

The study keeps a fingerprint of its data (``DATA_ATTR``: content hash and
shape) and of its folds (``FOLDS_ATTR``: a hash of every fold's indices) as
Optuna user attrs, set when it was created (hpo/runner/opening.py); a nightly
parent run also carries the data's hash (``FINGERPRINT_TAG``). The replay
compares its plan's prints (``Plan.data_print``, ``Plan.folds_print``: the
same functions) with whichever of those it can read, and says what it could
not. It reads the study and never writes to it: ``check_compatible`` would
store the prints a study lacks, which a replay must not do.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo.cli import first_line
from hpo.config import Config, StorageConfig
from hpo.errors import UserError
from hpo.names import DATA_ATTR, FINGERPRINT_TAG, FOLDS_ATTR
from hpo.runner.plan import Plan
from hpo.secrets import env_name, mask
from hpo.storages import display_url, open_storage, storage_file, storage_url

MASKED = ":***@"  # what hpo.secrets.mask leaves of a password in a URL


@dataclass
class Findings:
    """What differs (each a phrase for the report line) and what was checked or not."""

    differs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check(plan: Plan, cfg: Config, parent_tags: Mapping[str, str], url: str | None) -> Findings:
    """Compare the plan's data and folds with the study's record; ``url``: the Optuna
    storage to read it from, instead of the one in the config."""
    found = Findings()
    attrs, why = study_attrs(cfg, url)
    now = {DATA_ATTR: plan.data_print(), FOLDS_ATTR: plan.folds_print()}
    checked, unchecked = [], []
    for key, what in ((DATA_ATTR, "data"), (FOLDS_ATTR, "CV folds")):
        old = attrs.get(key) if attrs is not None else None
        if not isinstance(old, Mapping):
            unchecked.append(what)
        elif old.get("hash") != now[key]["hash"]:
            found.differs.append(_differs(what, now[key], old, "the study"))
        else:
            checked.append(what)
    tagged = parent_tags.get(FINGERPRINT_TAG)
    if tagged is not None and "data" in unchecked:  # a nightly study's parent run has it
        unchecked.remove("data")
        if tagged != now[DATA_ATTR]["hash"]:
            recorded = {"hash": tagged, "what": f"hash {tagged[:8]}"}
            found.differs.append(_differs("data", now[DATA_ATTR], recorded, "the parent run"))
        else:
            checked.append("data")
    if checked:
        found.notes.append(f"{' and '.join(checked)} as the study recorded")
    if unchecked:
        reason = why or "the study predates its fingerprints"
        found.notes.append(f"{' and '.join(unchecked)} not checked ({reason})")
    return found


def _differs(what: str, now: Mapping[str, str], old: Mapping[str, Any], by: str) -> str:
    """``data fingerprint differs (now ...; the study recorded ...)``, with the hashes
    when the descriptions alone read the same (the same CV, other rows in its folds)."""
    shown, then = now["what"], str(old.get("what"))
    if shown == then:
        shown, then = f"{shown}, hash {now['hash'][:8]}", f"hash {str(old.get('hash'))[:8]}"
    return f"{what} fingerprint differs (now {shown}; {by} recorded {then})"


def study_attrs(cfg: Config, url: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The study's Optuna user attrs, or None and why they could not be read."""
    storage = cfg.storage if url is None else dataclasses.replace(cfg.storage, url=url)
    try:
        storage = _unmasked(storage)
        where = storage_url(storage)
        path = storage_file(where)
        if path is not None and not path.exists():
            return None, (
                f"no Optuna storage at {path}: run from the study's folder or give storage.url="
            )
        opened = open_storage(storage)
        try:
            study_id = opened.get_study_id_from_name(cfg.study.name)
        except KeyError:
            return None, f"no study '{cfg.study.name}' in {display_url(storage)}"
        return dict(opened.get_study_user_attrs(study_id)), None
    except UserError as err:
        return None, str(err)
    except Exception as err:  # a database that does not answer: the check is skipped, said
        return None, f"the Optuna storage did not answer: {mask(first_line(err))}"


def _unmasked(storage: StorageConfig) -> StorageConfig:
    """The storage with its password back from HPO_STORAGE_URL when config.yaml holds it
    masked (the environment's URL, masked, must be the recorded one)."""
    if MASKED not in storage.url:
        return storage
    secret = os.environ.get(env_name("storage.url"), "")
    if secret and mask(secret) == storage.url:
        return dataclasses.replace(storage, url=secret)
    raise UserError(
        f"the storage URL's password is masked in config.yaml: set {env_name('storage.url')} "
        "or give storage.url="
    )
