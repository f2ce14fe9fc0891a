"""Dated study names: ``<study>-<YYYY-MM-DD>``, one per night, found again by their date."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from hpo.errors import UserError

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def night_of(value: str | None) -> str:
    """The night's logical date: ``value`` (a backfill, a test) or today in UTC.

    UTC, so that machines in different time zones, and a run that crosses
    midnight, agree on which night it is.
    """
    if value is None:
        return dt.datetime.now(dt.UTC).date().isoformat()
    text = str(value).strip()
    try:
        if not DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise UserError(
            f"schedule.date '{text}' is not a date: use schedule.date=YYYY-MM-DD"
        ) from None


def dated(base: str, night: str) -> str:
    return f"{base}-{night}"


def nights(study_names: Iterable[str], base: str) -> dict[str, str]:
    """{night: study name} of the dated studies of ``base`` among ``study_names``."""
    pattern = re.compile(re.escape(base) + r"-(\d{4}-\d{2}-\d{2})")
    found = {}
    for name in study_names:
        if match := pattern.fullmatch(name):
            found[match.group(1)] = name
    return dict(sorted(found.items()))
