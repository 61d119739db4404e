"""The days a page can show and their bounds in the page's time zone.

A page's day runs midnight to midnight in its zone (23 or 25 hours across DST); the store
is in UTC. These turn URL text and button presses into days and days into UTC instants.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Final

# Days the page can show: firewall logs start after the epoch, and the day
# after date.max does not exist.
FIRST_DAY: Final = dt.date(1970, 1, 1)
LAST_DAY: Final = dt.date.max - dt.timedelta(days=1)


def day_bounds(date: dt.date, zone: dt.tzinfo = dt.UTC) -> tuple[dt.datetime, dt.datetime]:
    """The day from midnight to midnight in ``zone``, as UTC instants (23 or 25 hours on DST days)."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    return start, end


def parse_zone(name: str) -> dt.tzinfo | None:
    """An IANA time zone ("Europe/Zurich", "UTC"), or None if there is no such zone."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def parse_day(text: str) -> dt.date | None:
    """A YYYY-MM-DD day the page can show, or None."""
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return date if FIRST_DAY <= date <= LAST_DAY else None


def shift_day(date: dt.date, days: int) -> dt.date:
    """The day ``days`` away, held within the days the page can show."""
    try:
        shifted = date + dt.timedelta(days=days)
    except OverflowError:
        return LAST_DAY if days > 0 else FIRST_DAY
    return min(max(shifted, FIRST_DAY), LAST_DAY)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def today_in(zone: dt.tzinfo) -> dt.date:
    return dt.datetime.now(zone).date()


def epoch_ms(t: dt.datetime) -> float:
    """An instant as Bokeh's datetime axis holds it: milliseconds since the epoch."""
    return t.timestamp() * 1000.0


def from_epoch_ms(ms: float) -> dt.datetime:
    """A Bokeh axis position back to a UTC instant."""
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.UTC)
