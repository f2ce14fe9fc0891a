"""The night's logical date (hpo/schedule/names.py): the given date, or today in UTC."""

from __future__ import annotations

import datetime as dt

import pytest

from hpo.errors import UserError
from hpo.schedule.names import night_of


def test_the_night_is_the_given_date_or_today_in_utc_and_a_bad_date_is_a_user_error() -> None:
    assert night_of("2024-02-29") == "2024-02-29"
    utc_days = {(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=s)).date() for s in (-1, 1)}
    assert dt.date.fromisoformat(night_of(None)) in utc_days, "no date: today in UTC"
    with pytest.raises(UserError, match=r"schedule\.date '2024-13-01' is not a date"):
        night_of("2024-13-01")
