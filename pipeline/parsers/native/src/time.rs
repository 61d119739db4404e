//! Timestamps: calendar arithmetic and the syslog stamps every format's header uses.

use crate::cursor::Cursor;

/// How an RFC 3164 stamp (no year) gets its year, from the Python side
/// (syslog._from_rfc3164): the latest moment a line may carry, on the
/// source's wall clock, as year and (month*32 + day)*86400 + second of day,
/// and the leap years to use for February 29.
#[derive(Clone, Copy)]
pub struct YearRule {
    pub latest_year: i64,
    pub latest_key: i64,
    pub leap_before: i64, // last leap year <= latest_year - 1
    pub leap_latest: i64, // last leap year <= latest_year
}

/// syslog.MONTHS, case as written (RE2 matches them case-sensitively).
pub fn month_number(text: &[u8]) -> Option<i64> {
    Some(match text {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

pub const SECONDS_PER_DAY: i64 = 86_400;
pub const US_PER_SECOND: i64 = 1_000_000;

/// "HH:MM:SS" as seconds since midnight; None out of range (25:00, 12:60).
pub fn clock(c: &mut Cursor) -> Option<i64> {
    let start = c.pos;
    let ok = c.exactly(2, |b| b.is_ascii_digit())
        && c.literal(b":")
        && c.exactly(2, |b| b.is_ascii_digit())
        && c.literal(b":")
        && c.exactly(2, |b| b.is_ascii_digit());
    if !ok {
        c.pos = start;
        return None;
    }
    let t = &c.text[start..c.pos];
    let (h, m, s) = (value(&t[0..2]), value(&t[3..5]), value(&t[6..8]));
    if h >= 24 || m >= 60 || s >= 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

/// Decimal digits (checked by the caller) as a number.
pub fn value(digits: &[u8]) -> i64 {
    digits.iter().fold(0, |n, &b| n * 10 + i64::from(b - b'0'))
}

pub fn valid_date(year: i64, month: i64, day: i64) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let longest = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=longest).contains(&day)
}

/// Microseconds since 1970 of a proleptic Gregorian date and time, as if in
/// UTC (Howard Hinnant's days_from_civil, as syslog._wall_clock_us).
pub fn wall_clock_us(year: i64, month: i64, day: i64, seconds: i64, fraction_us: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = if month <= 2 { month + 9 } else { month - 3 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    (days * SECONDS_PER_DAY + seconds) * US_PER_SECOND + fraction_us
}

/// syslog.RFC3339_TIMESTAMP at the cursor: UTC microseconds (or wall-clock
/// ones, and true, when the stamp names no offset).
pub fn rfc3339(c: &mut Cursor) -> Option<(i64, bool)> {
    let head = c.text;
    let mut ts_local = true;
    let date_start = c.pos;
    let date_ok = c.exactly(4, |b| b.is_ascii_digit())
        && c.literal(b"-")
        && c.exactly(2, |b| b.is_ascii_digit())
        && c.literal(b"-")
        && c.exactly(2, |b| b.is_ascii_digit())
        && c.exactly(1, |b| matches!(b, b'T' | b't' | b' '));
    if !date_ok {
        return None;
    }
    let year = value(&head[date_start..date_start + 4]);
    let month = value(&head[date_start + 5..date_start + 7]);
    let day = value(&head[date_start + 8..date_start + 10]);
    let seconds = clock(c)?;
    let mut fraction_us = 0;
    if matches!(c.peek(), Some(b'.' | b',')) {
        c.pos += 1;
        let start = c.pos;
        let count = c.digits();
        if !(1..=9).contains(&count) {
            return None;
        }
        // Digits past the sixth are below our resolution: truncated.
        for i in 0..6 {
            let digit = if i < count { head[start + i] - b'0' } else { 0 };
            fraction_us = fraction_us * 10 + i64::from(digit);
        }
    }
    let mut offset_s = 0;
    match c.peek() {
        Some(b'Z' | b'z') => {
            c.pos += 1;
            ts_local = false;
        }
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let hours_at = c.pos;
            if !c.exactly(2, |b| b.is_ascii_digit()) {
                return None;
            }
            c.literal(b":");
            let minutes_at = c.pos;
            if !c.exactly(2, |b| b.is_ascii_digit()) {
                return None;
            }
            let hours = value(&head[hours_at..hours_at + 2]);
            let minutes = value(&head[minutes_at..minutes_at + 2]);
            if hours >= 24 || minutes >= 60 {
                return None;
            }
            offset_s = (hours * 3600 + minutes * 60) * if sign == b'-' { -1 } else { 1 };
            ts_local = false;
        }
        _ => {}
    }
    if year < 1 || !valid_date(year, month, day) {
        return None;
    }
    Some((wall_clock_us(year, month, day, seconds, fraction_us) - offset_s * US_PER_SECOND, ts_local))
}

/// syslog.RFC3164_TIMESTAMP or RFC3339_TIMESTAMP at the cursor (after any
/// PRI): microseconds, and whether they are wall-clock time in the source's
/// zone (true) or UTC.
pub fn stamp(c: &mut Cursor, years: YearRule) -> Option<(i64, bool)> {
    match c.peek()? {
        b'A'..=b'Z' => {
            let month = month_number(c.text.get(c.pos..c.pos + 3)?)?;
            c.pos += 3;
            if !c.literal(b" ") {
                return None;
            }
            // "(?: \d|\d\d?)": a space-padded day, or one or two digits.
            let day_start = c.pos;
            if c.literal(b" ") {
                if !c.exactly(1, |b| b.is_ascii_digit()) {
                    return None;
                }
            } else if !c.exactly(2, |b| b.is_ascii_digit()) && !c.exactly(1, |b| b.is_ascii_digit()) {
                return None;
            }
            let day_text = &c.text[day_start..c.pos];
            let day = value(if day_text[0] == b' ' { &day_text[1..] } else { day_text });
            if !c.literal(b" ") {
                return None;
            }
            let seconds = clock(c)?;
            Some((rfc3164_us(month, day, seconds, years)?, true))
        }
        b'0'..=b'9' => rfc3339(c),
        _ => None,
    }
}

/// A stamp without a year as wall-clock microseconds, the way
/// syslog._from_rfc3164 gives it a year: the latest that puts it no later
/// than the latest moment; February 29 in the leap year before. None for a
/// date that does not exist.
pub fn rfc3164_us(month: i64, day: i64, seconds: i64, years: YearRule) -> Option<i64> {
    let key = (month * 32 + day) * SECONDS_PER_DAY + seconds;
    let later = key > years.latest_key;
    let year = if month == 2 && day == 29 {
        if later { years.leap_before } else { years.leap_latest }
    } else if later {
        years.latest_year - 1
    } else {
        years.latest_year
    };
    if !valid_date(year, month, day) {
        return None;
    }
    Some(wall_clock_us(year, month, day, seconds, 0))
}
