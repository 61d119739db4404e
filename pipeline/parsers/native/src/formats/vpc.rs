//! AWS VPC flow log records, version 2 default format, as
//! `pipeline.parsers.vpc` reads them: fourteen fields split on single spaces.

use super::{protocol_name, Fields, Format, Text, NTEXT, PORT_PROTOCOLS};
use crate::address::any_kind;
use crate::cursor::search;
use crate::time::{YearRule, US_PER_SECOND};

pub static FORMAT: Format = Format { scan_line, spell: [None; NTEXT] };

const COLUMNS: usize = 14;

/// Decimal digits (1 to 12 of them) as a number.
fn decimal(text: &[u8]) -> Option<i64> {
    if !(1..=12).contains(&text.len()) || !text.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.iter().fold(0i64, |n, &b| n * 10 + i64::from(b - b'0')))
}

pub fn scan_line(line: &[u8], _: YearRule) -> Option<Fields> {
    // `^2 (?:\S+ ){12}\S+$`: RE2's \s is space, tab, newline, form feed and carriage return.
    if !line.starts_with(b"2 ") || line.iter().any(|b| matches!(b, b'\t' | b'\n' | 0x0c | b'\r')) {
        return None;
    }
    let mut spans = [(0usize, 0usize); COLUMNS];
    let mut from = 0;
    for (i, span) in spans.iter_mut().enumerate() {
        let end = search::first_of(&line[from..], b' ', b' ').map_or(line.len(), |at| from + at);
        if end == from || (i + 1 < COLUMNS) == (end == line.len()) {
            return None; // an empty field, or not exactly fourteen
        }
        *span = (from, end);
        from = end + 1;
    }
    let at = |i: usize| &line[spans[i].0..spans[i].1];
    let span = |i: usize| Text::Span(spans[i].0, spans[i].1);
    if at(13) != b"OK" {
        return None;
    }
    let action: &'static [u8] = match at(12) {
        b"ACCEPT" => b"accept",
        b"REJECT" => b"reject",
        _ => return None,
    };
    let protocol = at(7);
    if protocol.len() > 3 || decimal(protocol)? > 255 {
        return None;
    }
    let name = protocol_name(protocol);
    let takes_ports = name.map_or(false, |name| PORT_PROTOCOLS.iter().any(|p| *p == name));
    let (spt, dpt) = if takes_ports {
        let (spt, dpt) = (decimal(at(5))?, decimal(at(6))?);
        if spt > i64::from(super::MAX_PORT) || dpt > i64::from(super::MAX_PORT) {
            return None;
        }
        (spt as i32, dpt as i32)
    } else {
        (-1, -1)
    };
    let count = decimal(at(8))?;
    if !(1..=i64::from(i32::MAX)).contains(&count) {
        return None;
    }
    let seconds = decimal(at(10))?;
    if seconds > 253_402_300_799 {
        return None;
    }
    let ip_version = match (any_kind(at(3))?, any_kind(at(4))?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    let mut text = [Text::Null; NTEXT];
    // The account id stands in for the host; "-" names none.
    text[super::HOST] = if at(1) == b"-" { Text::Null } else { span(1) };
    text[super::ACTION] = Text::Fixed(action);
    text[super::IN_IF] = span(2);
    text[super::SRC] = span(3);
    text[super::DST] = span(4);
    text[super::PROTO] = match name {
        Some(name) => Text::Fixed(name),
        None => span(7),
    };
    Some(Fields {
        ts_us: seconds * US_PER_SECOND,
        ts_local: false,
        ts_add_us: 0,
        spt,
        dpt,
        ip_version,
        count: count as i32,
        text,
    })
}
