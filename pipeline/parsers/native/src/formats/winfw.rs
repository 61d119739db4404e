//! Windows Firewall `pfirewall.log` data lines in the standard 1.5 columns
//! (with or without the later `pid`), as `pipeline.parsers.winfw` reads
//! them: fields split on single spaces, by position. Which columns a batch
//! has is the Python side's call (its `#Fields` headers); it picks one of the
//! three layouts below, or leaves the batch to pyarrow.

use super::{digits_at, protocol_name, Fields, Format, Text, NTEXT};
use crate::address::any_kind;
use crate::cursor::{search, Cursor};
use crate::time::{clock, valid_date, value, wall_clock_us, YearRule};

/// Any batch without a header: 17 fields, or 18 with `pid`.
pub static EITHER: Format = Format { scan_line: scan_either, spell: spellers() };
/// Declared as the 17 standard fields.
pub static STANDARD: Format = Format { scan_line: scan_standard, spell: spellers() };
/// Declared as the 17 standard fields and `pid`.
pub static WITH_PID: Format = Format { scan_line: scan_with_pid, spell: spellers() };

const fn spellers() -> [Option<super::Speller>; NTEXT] {
    let mut spell: [Option<super::Speller>; NTEXT] = [None; NTEXT];
    spell[super::PROTO] = Some(spell_proto);
    spell
}

/// As winfw._read names it: a number by `protocol_names`, else upper case, ICMPV6 as ICMPv6.
fn spell_proto(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if text.iter().all(|b| b.is_ascii_digit()) {
        out.extend_from_slice(protocol_name(text).unwrap_or(text));
        return;
    }
    out.extend(text.iter().map(|b| b.to_ascii_uppercase()));
    if &out[..] == b"ICMPV6" {
        out.clear();
        out.extend_from_slice(b"ICMPv6");
    }
}

fn scan_either(line: &[u8], _: YearRule) -> Option<Fields> {
    scan_line(line, 17, 18)
}

fn scan_standard(line: &[u8], _: YearRule) -> Option<Fields> {
    scan_line(line, 17, 17)
}

fn scan_with_pid(line: &[u8], _: YearRule) -> Option<Fields> {
    scan_line(line, 18, 18)
}

/// A port field: "-" is none (-1), else 1 to 9 digits up to 65535.
fn port(text: &[u8]) -> Option<i32> {
    if text == b"-" {
        return Some(-1);
    }
    match digits_at(text, 0)? {
        (value, end) if end == text.len() && value <= super::MAX_PORT => Some(value),
        _ => None,
    }
}

const READ: usize = 10; // date .. tcpflags

fn scan_line(line: &[u8], fewest: usize, most: usize) -> Option<Fields> {
    let width = search::count(line, b' ') + 1;
    if width < fewest || width > most {
        return None;
    }
    let mut spans = [(0usize, 0usize); READ];
    let mut from = 0;
    for span in spans.iter_mut() {
        let end = search::first_of(&line[from..], b' ', b' ').map_or(line.len(), |at| from + at);
        *span = (from, end);
        from = (end + 1).min(line.len());
    }
    let at = |i: usize| &line[spans[i].0..spans[i].1];
    // `date` "YYYY-MM-DD" and `time` "HH:MM:SS", local time (RFC 3339 without offset).
    let date = at(0);
    let shaped = date.len() == 10
        && date.iter().enumerate().all(|(i, &b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shaped || at(1).len() != 8 {
        return None;
    }
    let (year, month, day) = (value(&date[0..4]), value(&date[5..7]), value(&date[8..10]));
    let seconds = clock(&mut Cursor { text: at(1), pos: 0 })?;
    if !valid_date(year, month, day) {
        return None;
    }
    let ts_us = wall_clock_us(year, month, day, seconds, 0);
    let action: &'static [u8] = match at(2) {
        b"DROP" => b"drop",
        b"ALLOW" => b"accept",
        _ => return None,
    };
    // `^(?:[A-Z][A-Za-z0-9]*|\d{1,3})$` once spelled: ASCII letters and digits, a letter first, or a short number.
    let protocol = at(3);
    let numeric = !protocol.is_empty() && protocol.iter().all(|b| b.is_ascii_digit());
    let named = protocol.first().map_or(false, |b| b.is_ascii_alphabetic())
        && protocol.iter().all(|b| b.is_ascii_alphanumeric());
    if !(named || (numeric && protocol.len() <= 3)) {
        return None;
    }
    let ip_version = match (any_kind(at(4))?, any_kind(at(5))?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    let (spt, dpt) = (port(at(6))?, port(at(7))?);
    let is_tcp = protocol == b"6" || protocol.eq_ignore_ascii_case(b"TCP");
    let mut text = [Text::Null; NTEXT];
    text[super::ACTION] = Text::Fixed(action);
    text[super::SRC] = Text::Span(spans[4].0, spans[4].1);
    text[super::DST] = Text::Span(spans[5].0, spans[5].1);
    text[super::PROTO] = Text::Span(spans[3].0, spans[3].1);
    // The letters as written ("-": none); the Python side spells them once per distinct value.
    text[super::FLAGS] = if is_tcp && at(9) != b"-" { Text::Span(spans[9].0, spans[9].1) } else { Text::Null };
    Some(Fields { ts_us, ts_local: true, ts_add_us: 0, spt, dpt, ip_version, count: 1, text })
}
