//! pfSense/OPNsense `filterlog` lines behind an RFC 3164 (or ISO-8601) header,
//! as `pipeline.parsers.filterlog` reads them: `LINE` decides that a line
//! fits, `syslog.header`'s quick path reads the time and host, and the
//! fields are the line split on commas, by position after the IP version.
//! RFC 5424 envelopes (OPNsense's newer default) are left to it.

use super::{digits_at, protocol_name, Fields, Format, Text, NTEXT, PORT_PROTOCOLS};
use crate::address::any_kind;
use crate::cursor::{search, Cursor};
use crate::time::{stamp, YearRule};

pub static FORMAT: Format = Format { scan_line, spell: [None; NTEXT] };

/// Fields read by position: the highest any format version uses, plus one.
const READ: usize = 24;

fn action(text: &[u8]) -> Option<&'static [u8]> {
    Some(match text {
        b"pass" | b"match" => b"accept",
        b"block" => b"drop",
        b"reject" => b"reject",
        _ => return None,
    })
}

/// A port field: "" is none (-1), else 1 to 9 digits up to 65535.
fn port(text: &[u8]) -> Option<i32> {
    if text.is_empty() {
        return Some(-1);
    }
    match digits_at(text, 0)? {
        (value, end) if end == text.len() && value <= super::MAX_PORT => Some(value),
        _ => None,
    }
}

pub fn scan_line(line: &[u8], years: YearRule) -> Option<Fields> {
    let mut c = Cursor { text: line, pos: 0 };
    if c.literal(b"<") && !((1..=3).contains(&c.digits()) && c.literal(b">") && !c.looking_at(b"1 ")) {
        return None;
    }
    let (ts_us, ts_local) = stamp(&mut c, years)?;
    if !c.literal(b" ") {
        return None;
    }
    // syslog.header's quick path: the word after the stamp (up to white
    // space or "="), a host when a space follows and it is not "", "-" or a tag.
    let mut host = Text::Null;
    if !c.looking_at(b"filterlog") {
        let start = c.pos;
        let length = c.field(b'=');
        let word = &line[start..c.pos];
        if length == 0 || word.ends_with(b":") || word.contains(&b',') || !c.literal(b" ") {
            return None;
        }
        if word != b"-" {
            host = Text::Span(start, c.pos - 1);
        }
    }
    // `filterlog(?:\[\d+\])?: ` then the CSV, whose first field holds no white space.
    if !c.literal(b"filterlog") {
        return None;
    }
    let start = c.pos;
    if !(c.literal(b"[") && c.digits() > 0 && c.literal(b"]")) {
        c.pos = start;
    }
    if !c.literal(b": ") {
        return None;
    }
    let csv = c.pos;
    let mut spans = [(0usize, 0usize); READ];
    let mut width = 0;
    let mut from = csv;
    loop {
        let end = search::first_of(&line[from..], b',', b',').map_or(line.len(), |at| from + at);
        if width < READ {
            spans[width] = (from, end);
        }
        width += 1;
        if end == line.len() {
            break;
        }
        from = end + 1;
    }
    if width < 2 || search::field_end(&line[csv..spans[0].1], b',') != spans[0].1 - csv {
        return None; // no comma, or white space in the first field
    }
    let at = |i: usize| if i < width.min(READ) { &line[spans[i].0..spans[i].1] } else { &b""[..] };
    let span = |i: usize| if i < width.min(READ) { Text::Span(spans[i].0, spans[i].1) } else { Text::Fixed(b"") };
    let (protoid, src, dst, sport, dport, flags) = match at(8) {
        b"4" => (15, 18, 19, 20, 21, 23),
        b"6" => (13, 15, 16, 17, 18, 20),
        _ => return None,
    };
    let number = at(protoid);
    if !(1..=3).contains(&number.len()) || !number.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = protocol_name(number);
    let takes_ports = name.map_or(false, |name| PORT_PROTOCOLS.iter().any(|p| *p == name));
    if width < if takes_ports { dport + 1 } else { dst + 1 } {
        return None;
    }
    let action = action(at(6))?;
    let inbound = match at(7) {
        b"in" => true,
        b"out" => false,
        _ => return None,
    };
    let ip_version = match (any_kind(at(src))?, any_kind(at(dst))?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    let (spt, dpt) = if takes_ports { (port(at(sport))?, port(at(dport))?) } else { (-1, -1) };
    let mut text = [Text::Null; NTEXT];
    text[super::HOST] = host;
    // The tracker, else the rule number.
    text[super::PREFIX] = if !at(3).is_empty() { span(3) } else { span(0) };
    text[super::ACTION] = Text::Fixed(action);
    text[if inbound { super::IN_IF } else { super::OUT_IF }] = span(4);
    text[super::SRC] = span(src);
    text[super::DST] = span(dst);
    text[super::PROTO] = match name {
        Some(name) => Text::Fixed(name),
        None => span(protoid),
    };
    // The letters as written; the Python side spells them as words once per distinct value.
    text[super::FLAGS] = if name == Some(&b"TCP"[..]) { span(flags) } else { Text::Null };
    Some(Fields { ts_us, ts_local, ts_add_us: 0, spt, dpt, ip_version, count: 1, text })
}
