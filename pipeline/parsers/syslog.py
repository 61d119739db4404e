"""Syslog envelopes: the header in front of a firewall's message, and its time.

Firewalls rarely write files of their own; a syslog daemon does, and puts a
header in front of every message. Format parsers compose ``HEADER`` into their
own RE2 patterns and turn the timestamp text it captures into UTC with
`timestamps`, a whole column at a time.

Headers recognised (shared/reference/log-formats.md section 3):

* RFC 3164, ``[<PRI>]Mmm dd HH:MM:SS [HOST] MSG``: no year and no zone. The year
  is inferred from ``ctx.reference_time``, the zone is ``ctx.tz``. HOST is
  optional because some senders leave it out; a word ending in ``:`` is taken
  for a tag, not a host.
* The same with an RFC 3339 timestamp (rsyslog's high-precision file format),
  with or without a zone offset.
* RFC 5424, ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG``, and the same without
  ``<PRI>`` (as some relays write it to files).

RFC 3164's TAG (``kernel:``) stays in the message: it cannot be told apart from
message text such as a log prefix ``DROP:``, so each format recognises its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.event import TS_TYPE
from pipeline.parsers import ParseContext

MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# The day is space-padded by the RFC ("Jan  8"), but some senders write
# "Jan 8" or "Jan 08".
RFC3164_TIMESTAMP: Final = rf"(?:{'|'.join(MONTHS)}) (?: \d|\d\d?) \d\d:\d\d:\d\d"
RFC3339_TIMESTAMP: Final = r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:[Zz]|[+-]\d\d:?\d\d)?"

# Hostnames never hold "=", and a word ending in ":" is a tag ("kernel:",
# "DENY:") of a header that names no host.
_HOSTNAME: Final = r"[^\s=]*[^\s:=]"
# SD-ELEMENTs per RFC 5424 section 6.3; PARAM-VALUE escapes '"', '\' and ']'.
_SD_NAME: Final = r'[^\s="\]]{1,32}'
_STRUCTURED_DATA: Final = rf'(?:-|(?:\[{_SD_NAME}(?: {_SD_NAME}="(?:[^"\\]|\\.)*")*\])+)'

HEADER: Final = (
    rf"(?:(?:<\d{{1,3}}>)?1 (?P<ts5424>{RFC3339_TIMESTAMP}) (?P<host5424>\S+) \S+ \S+ \S+ "
    rf"{_STRUCTURED_DATA} (?:\x{{FEFF}})?"
    rf"|(?:<\d{{1,3}}>)?(?P<ts>{RFC3164_TIMESTAMP}|{RFC3339_TIMESTAMP}) "
    rf"(?:(?P<host>{_HOSTNAME}) )?)"
)
"""RE2 source matching a syslog header up to its message, not anchored.

Named groups: ``ts`` and ``host`` (RFC 3164 layout), ``ts5424`` and
``host5424`` (RFC 5424); a group that did not take part is empty. Use
`header` to read them.
"""

_QUICK_HEADER: Final = (
    rf"^(?:<\d{{1,3}}>)?(?P<ts>{RFC3164_TIMESTAMP}|{RFC3339_TIMESTAMP}) (?P<host>[^\s=]*)(?P<space> ?)"
)

_US_PER_S: Final = 1_000_000
_S_PER_DAY: Final = 86_400
# Longest each month can be; February 29 is valid whenever the year allows.
_MONTH_DAYS_MAX: Final = pa.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())
_UTC_KEYS: Final = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "GMT"})
_NULL_STRING: Final = pa.scalar(None, pa.string())


@dataclass(frozen=True)
class Header:
    """Header fields of a column of lines, one entry per line."""

    ts_text: pa.Array  # string; the timestamp as written, null where no header
    host: pa.Array  # string; null where there is no header or it names no host

    @classmethod
    def from_match(cls, found: pa.StructArray) -> Header:
        """The fields of an `extract_regex` result whose pattern embeds ``HEADER``."""
        if isinstance(found, pa.ChunkedArray):
            found = found.combine_chunks()
        ts_text = pc.binary_join_element_wise(found.field("ts"), found.field("ts5424"), "")
        host = pc.binary_join_element_wise(found.field("host"), found.field("host5424"), "")
        valid = found.is_valid()
        # "-" is RFC 5424's NILVALUE: the sender did not know its name.
        host = pc.if_else(pc.and_(valid, pc.not_equal(host, "-")), host, _NULL_STRING)
        return cls(ts_text=_non_empty(pc.if_else(valid, ts_text, _NULL_STRING)), host=_non_empty(host))


def header(lines: pa.Array) -> Header:
    """Read the syslog header at the start of each line."""
    # Capture groups are what make RE2 slow, and HEADER's optional host and
    # its RFC 5424 branch take the slowest of its engines. The common RFC 3164
    # header is read with a pattern its one-pass engine can run, which agrees
    # with HEADER wherever it matches; the other lines get HEADER itself.
    quick = pc.extract_regex(lines, _QUICK_HEADER)
    matched = quick.is_valid()
    host = quick.field("host")
    named = _all(
        pc.equal(quick.field("space"), " "),
        # A "-" names no host, as RFC 5424's NILVALUE does below.
        pc.invert(pc.is_in(host, value_set=pa.array(["", "-"]))),
        pc.invert(pc.ends_with(host, ":")),
    )
    result = Header(
        ts_text=pc.if_else(matched, quick.field("ts"), _NULL_STRING),
        host=pc.if_else(pc.and_(matched, named), host, _NULL_STRING),
    )
    if pc.all(matched).as_py() is not False:
        return result
    others = pc.invert(matched)
    full = Header.from_match(pc.extract_regex(lines.filter(others), f"^(?:{HEADER})"))
    return Header(
        ts_text=pc.replace_with_mask(result.ts_text, others, full.ts_text),
        host=pc.replace_with_mask(result.host, others, full.host),
    )


def timestamps(text: pa.Array, ctx: ParseContext) -> pa.Array:
    """Turn RFC 3164 or RFC 3339 timestamp text into UTC microseconds.

    Null where the text is null, is neither form, or names a time that
    cannot exist (February 30, 25:00). RFC 3164 stamps get the latest year
    that puts them no more than a day after ``ctx.reference_time`` (judged on
    the wall clock of ``ctx.tz``): a line from December 31 read on January 1
    lands in the old year, and a clock a little ahead of ours does not throw
    a line a year back. Stamps without an offset are wall-clock times in
    ``ctx.tz``; a time repeated by a DST change is taken as its first
    occurrence, and one skipped by it as the end of the gap.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    # Second-resolution stamps repeat on a busy gateway (every line of a
    # second shares one): each distinct stamp is converted once.
    encoded = pc.dictionary_encode(text)
    return pc.take(_distinct_timestamps(encoded.dictionary, ctx), encoded.indices)


def local_time_is_utc(ctx: ParseContext) -> bool:
    """Whether stamps without an offset are UTC as written (no DST to step over)."""
    return getattr(ctx.tz, "key", None) in _UTC_KEYS


def _distinct_timestamps(text: pa.Array, ctx: ParseContext) -> pa.Array:
    out = pa.nulls(len(text), pa.int64())
    for pattern, convert in (
        (RFC3164_TIMESTAMP, _from_rfc3164),
        (RFC3339_TIMESTAMP, _from_rfc3339),
    ):
        matches = pc.fill_null(pc.match_substring_regex(text, f"^(?:{pattern})$"), False)
        count = pc.sum(matches).as_py() or 0
        if count == 0:
            continue
        if count == len(text):
            out = convert(text, ctx)
        else:
            out = pc.replace_with_mask(out, matches, convert(text.filter(matches), ctx))
    return out.cast(TS_TYPE)


def year_rule(ctx: ParseContext) -> tuple[int, int, int, int]:
    """How RFC 3164 stamps get their year: the latest moment a line may carry.

    As the source's wall clock sees it: its year, its (month * 32 + day) *
    86400 + second of day (a stamp past it is from last year), and the leap
    years February 29 falls in for a stamp after and before that moment.
    """
    latest = (_as_aware(ctx.reference_time) + dt.timedelta(days=1)).astimezone(ctx.tz)
    key = (
        (latest.month * 32 + latest.day) * _S_PER_DAY
        + latest.hour * 3600
        + latest.minute * 60
        + latest.second
    )
    return latest.year, key, _leap_year_at_or_before(latest.year - 1), _leap_year_at_or_before(latest.year)


def _from_rfc3164(text: pa.Array, ctx: ParseContext) -> pa.Array:
    month = pc.add(pc.index_in(_slice(text, 0, 3), value_set=pa.array(MONTHS)), 1)
    day = _int(pc.utf8_trim_whitespace(_slice(text, 4, -9)))
    seconds = _seconds_of_day(text, -8)

    latest_year, latest_key, leap_before, leap_latest = year_rule(ctx)
    # Month, day and time folded into one number that orders like the calendar.
    key = pc.add(pc.multiply(pc.add(pc.multiply(month, 32), day), _S_PER_DAY), seconds)
    later_in_year = pc.greater(key, latest_key)
    year = pc.if_else(later_in_year, latest_year - 1, latest_year)
    # February 29 only happens in leap years: step back to the last one.
    leap_day = pc.and_(pc.equal(month, 2), pc.equal(day, 29))
    year = pc.if_else(leap_day, pc.if_else(later_in_year, leap_before, leap_latest), year)
    valid = pc.and_(_valid_date(year, month, day), pc.is_valid(seconds))
    local = _wall_clock_us(year, month, day, seconds, pa.scalar(0, pa.int64()))
    return pc.if_else(valid, local_to_utc(local, ctx), pa.scalar(None, pa.int64()))


def _from_rfc3339(text: pa.Array, ctx: ParseContext) -> pa.Array:
    year = _int(_slice(text, 0, 4))
    month = _int(_slice(text, 5, 7))
    day = _int(_slice(text, 8, 10))
    seconds = _seconds_of_day(text, 11)
    tail = pc.extract_regex(
        _slice(text, 19, None), r"^(?:[.,](?P<fraction>\d{1,9}))?(?P<zone>[Zz]|[+-]\d\d:?\d\d)?$"
    )
    # Digits past the sixth are below our resolution: truncate, never round
    # into the next second.
    fraction_us = _int(_slice(pc.utf8_rpad(tail.field("fraction"), width=6, padding="0"), 0, 6))
    zone = tail.field("zone")
    has_offset = pc.greater(pc.utf8_length(zone), 1)
    sign = pc.if_else(pc.starts_with(zone, "-"), -1, 1)
    offset_hours = _int(pc.if_else(has_offset, _slice(zone, 1, 3), "0"))
    offset_minutes = _int(pc.if_else(has_offset, _slice(zone, -2, None), "0"))
    offset_s = pc.multiply(sign, pc.add(pc.multiply(offset_hours, 3600), pc.multiply(offset_minutes, 60)))

    valid = pc.and_(
        pc.and_(_valid_date(year, month, day), pc.is_valid(seconds)),
        pc.and_(pc.less(offset_hours, 24), pc.less(offset_minutes, 60)),
    )
    local = _wall_clock_us(year, month, day, seconds, fraction_us)
    with_zone = pc.subtract(local, pc.multiply(offset_s, _US_PER_S))
    zoned = pc.not_equal(zone, "")
    utc = with_zone if pc.all(zoned).as_py() else pc.if_else(zoned, with_zone, local_to_utc(local, ctx))
    return pc.if_else(valid, utc, pa.scalar(None, pa.int64()))


def _all(*conditions: pa.Array) -> pa.Array:
    result = conditions[0]
    for condition in conditions[1:]:
        result = pc.and_(result, condition)
    return result


def _slice(text: pa.Array, start: int, stop: int | None) -> pa.Array:
    return pc.utf8_slice_codeunits(text, start=start, stop=stop)


def _int(text: pa.Array) -> pa.Array:
    # Only ever called on text the timestamp patterns proved to be digits.
    return pc.cast(text, pa.int64())


def _non_empty(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), _NULL_STRING, text)


def _seconds_of_day(text: pa.Array, start: int) -> pa.Array:
    """Seconds since midnight of the ``HH:MM:SS`` at ``start``; null if out of range."""
    hours = _int(_slice(text, start, start + 2))
    minutes = _int(_slice(text, start + 3, start + 5))
    seconds = _int(_slice(text, start + 6, start + 8 if start + 8 != 0 else None))
    in_range = pc.and_(
        pc.and_(pc.less(hours, 24), pc.less(minutes, 60)),
        pc.less(seconds, 60),
    )
    total = pc.add(pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)), seconds)
    return pc.if_else(in_range, total, pa.scalar(None, pa.int64()))


def _leap_year_at_or_before(year: int) -> int:
    while not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        year -= 1
    return year


def _mod(a: pa.Array, b: int) -> pa.Array:
    # Arrow has no modulo kernel; integer division truncates, and every
    # operand here is non-negative.
    return pc.subtract(a, pc.multiply(pc.divide(a, b), b))


def _valid_date(year: pa.Array, month: pa.Array, day: pa.Array) -> pa.Array:
    month_ok = pc.and_(pc.greater_equal(month, 1), pc.less_equal(month, 12))
    safe_month = pc.if_else(month_ok, month, 1)
    longest = pc.take(_MONTH_DAYS_MAX, pc.subtract(safe_month, 1))
    leap = pc.or_(
        pc.and_(pc.equal(_mod(year, 4), 0), pc.not_equal(_mod(year, 100), 0)),
        pc.equal(_mod(year, 400), 0),
    )
    longest = pc.if_else(pc.and_(pc.equal(safe_month, 2), pc.invert(leap)), 28, longest)
    return pc.and_(
        pc.and_(month_ok, pc.greater_equal(year, 1)),
        pc.and_(pc.greater_equal(day, 1), pc.less_equal(day, longest)),
    )


def _wall_clock_us(
    year: pa.Array, month: pa.Array, day: pa.Array, seconds: pa.Array, fraction_us: pa.Array | pa.Scalar
) -> pa.Array:
    """Microseconds since 1970 of a proleptic Gregorian date and time, as if in UTC."""
    # Howard Hinnant's days_from_civil, with March as the first month so the
    # leap day ends the year; valid for years >= 1, where all operands of the
    # truncating divisions are non-negative.
    march_based = pc.less_equal(month, 2)
    y = pc.subtract(year, pc.cast(march_based, pa.int64()))
    era = pc.divide(y, 400)
    year_of_era = pc.subtract(y, pc.multiply(era, 400))
    shifted_month = pc.if_else(march_based, pc.add(month, 9), pc.subtract(month, 3))
    day_of_year = pc.add(pc.divide(pc.add(pc.multiply(shifted_month, 153), 2), 5), pc.subtract(day, 1))
    day_of_era = pc.add(
        pc.subtract(
            pc.add(pc.multiply(year_of_era, 365), pc.divide(year_of_era, 4)),
            pc.divide(year_of_era, 100),
        ),
        day_of_year,
    )
    days = pc.subtract(pc.add(pc.multiply(era, 146_097), day_of_era), 719_468)
    total_s = pc.add(pc.multiply(days, _S_PER_DAY), seconds)
    return pc.add(pc.multiply(total_s, _US_PER_S), fraction_us)


def local_to_utc(local_us: pa.Array, ctx: ParseContext) -> pa.Array:
    if local_time_is_utc(ctx):
        return local_us
    key = getattr(ctx.tz, "key", None)
    if key is None:
        raise ValueError(f"time zone {ctx.tz!r} has no IANA name; build it with ZoneInfo(name)")
    naive = pc.cast(local_us, pa.timestamp("us"))
    aware = pc.assume_timezone(naive, timezone=key, ambiguous="earliest", nonexistent="latest")
    return pc.cast(aware, pa.int64())


def _as_aware(moment: dt.datetime) -> dt.datetime:
    # A naive reference time can only have come from a caller thinking in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
