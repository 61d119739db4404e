//! Cisco ASA/FTD messages 106023 and 106100 (the deny and ACL-hit messages
//! nearly every ASA log is made of), as `pipeline.parsers.asa.LINE` and its
//! `MESSAGES` read them. The other messages asa.py reads are left to it.

use super::{digits_at, protocol_name, Fields, Format, Text, NTEXT, PORT_PROTOCOLS, PROTO};
use crate::address::any_kind;
use crate::cursor::{search, Cursor};
use crate::time::{clock, month_number, stamp, valid_date, value, wall_clock_us, YearRule};

pub static FORMAT: Format = Format { scan_line, spell: spellers() };

const fn spellers() -> [Option<super::Speller>; NTEXT] {
    let mut spell: [Option<super::Speller>; NTEXT] = [None; NTEXT];
    spell[PROTO] = Some(spell_proto);
    spell
}

/// As asa.parse names it: a number by `protocol_names`, else upper case, ICMP6 as ICMPv6.
fn spell_proto(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if text.iter().all(|b| b.is_ascii_digit()) {
        out.extend_from_slice(protocol_name(text).unwrap_or(text));
        return;
    }
    out.extend(text.iter().map(|b| b.to_ascii_uppercase()));
    if &out[..] == b"ICMP6" {
        out.clear();
        out.extend_from_slice(b"ICMPv6");
    }
}

/// ASA's own `Mmm d[d] yyyy HH:MM:SS` (`logging timestamp`), as wall-clock microseconds.
/// Ok(None): not that shape (a syslog stamp may be there instead).
fn asa_stamp(c: &mut Cursor) -> Result<Option<i64>, ()> {
    let start = c.pos;
    let month = match c.text.get(c.pos..c.pos + 3).and_then(month_number) {
        Some(month) => month,
        None => return Ok(None),
    };
    c.pos += 3;
    let day_at = c.pos + 1;
    let shaped = c.literal(b" ") && c.digits() > 0 && c.pos - day_at <= 2 && c.literal(b" ");
    let year_at = c.pos;
    if !(shaped && c.exactly(4, |b| b.is_ascii_digit()) && c.literal(b" ")) {
        c.pos = start;
        return Ok(None);
    }
    let day = value(&c.text[day_at..year_at - 1]);
    let year = value(&c.text[year_at..year_at + 4]);
    let seconds = clock(c).ok_or(())?;
    if !valid_date(year, month, day) {
        return Err(());
    }
    Ok(Some(wall_clock_us(year, month, day, seconds, 0)))
}

/// `(?:protocol )?(?P<proto>[A-Za-z0-9]+)`.
fn protocol(c: &mut Cursor) -> Option<(usize, usize)> {
    c.literal(b"protocol ");
    let start = c.pos;
    if c.run(|b| b.is_ascii_alphanumeric()) == 0 {
        return None;
    }
    Some((start, c.pos))
}

/// `(?:\([^)]*\))?`: a user name in parentheses, when there.
fn user(c: &mut Cursor) {
    if c.peek() == Some(b'(') {
        if let Some(at) = search::first_of(&c.text[c.pos..], b')', b')') {
            c.pos += at + 1;
        }
    }
}

type Span = (usize, usize);

/// 106023's `ifc:addr[/port][(user)]`: interface, address, port (-1: none).
fn ifc_addr(c: &mut Cursor) -> Option<(Span, Span, i32)> {
    let start = c.pos;
    c.run(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b':'));
    let ifc = (start, c.pos);
    if ifc.0 == ifc.1 || !c.literal(b":") {
        return None;
    }
    let start = c.pos;
    c.run(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b'/' | b'(' | b')'));
    let address = (start, c.pos);
    if address.0 == address.1 {
        return None;
    }
    let mut port = -1;
    if c.literal(b"/") {
        let (number, end) = digits_at(c.text, c.pos)?;
        c.pos = end;
        port = number;
    }
    user(c);
    Some((ifc, address, port))
}

/// 106100's `ifc/addr(port)[(user)]`.
fn ifc_slash_addr(c: &mut Cursor) -> Option<(Span, Span, i32)> {
    let start = c.pos;
    c.run(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b'/'));
    let ifc = (start, c.pos);
    if ifc.0 == ifc.1 || !c.literal(b"/") {
        return None;
    }
    let start = c.pos;
    c.run(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b'(' | b')'));
    let address = (start, c.pos);
    if address.0 == address.1 || !c.literal(b"(") {
        return None;
    }
    let (port, end) = digits_at(c.text, c.pos)?;
    c.pos = end;
    if !c.literal(b")") {
        return None;
    }
    user(c);
    Some((ifc, address, port))
}

pub fn scan_line(line: &[u8], years: YearRule) -> Option<Fields> {
    let mut c = Cursor { text: line, pos: 0 };
    if c.literal(b"<") && !((1..=3).contains(&c.digits()) && c.literal(b">")) {
        return None;
    }
    let (ts_us, ts_local) = match asa_stamp(&mut c).ok()? {
        Some(ts) => (ts, true),
        None => stamp(&mut c, years)?,
    };
    // `(?: (?P<host>[^\s:%]+))?(?: ?:)? ?`
    let start = c.pos;
    let mut host = Text::Null;
    if c.literal(b" ") {
        let from = c.pos;
        if c.run(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b':' | b'%')) > 0 {
            host = Text::Span(from, c.pos);
        } else {
            c.pos = start;
        }
    }
    if !c.literal(b" :") {
        c.literal(b":");
    }
    c.literal(b" ");
    // `%(?:ASA|FTD)-\d-(?P<id>\d{6}): `
    let tag_start = c.pos;
    if !((c.literal(b"%ASA-") || c.literal(b"%FTD-")) && c.exactly(1, |b| b.is_ascii_digit()) && c.literal(b"-")) {
        return None;
    }
    let id = c.pos;
    if !c.exactly(6, |b| b.is_ascii_digit()) {
        return None;
    }
    let tag = (tag_start, c.pos);
    if !c.literal(b": ") {
        return None;
    }
    let (proto, src, dst, acl, action, count) = match &line[id..id + 6] {
        b"106023" => message_106023(&mut c)?,
        b"106100" => message_106100(&mut c)?,
        _ => return None,
    };
    let (src_if, src, spt) = src;
    let (dst_if, dst, dpt) = dst;
    let ip_version = match (any_kind(&line[src.0..src.1])?, any_kind(&line[dst.0..dst.1])?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    let mut spelled = Vec::new();
    spell_proto(&line[proto.0..proto.1], &mut spelled);
    let (spt, dpt) = if PORT_PROTOCOLS.iter().any(|p| *p == &spelled[..]) {
        if spt > super::MAX_PORT || dpt > super::MAX_PORT {
            return None;
        }
        (spt, dpt)
    } else {
        (-1, -1)
    };
    let mut text = [Text::Null; NTEXT];
    text[super::HOST] = host;
    text[super::PREFIX] = if acl.0 == acl.1 { Text::Span(tag.0, tag.1) } else { Text::Joined(tag, acl) };
    text[super::ACTION] = Text::Fixed(action);
    text[super::IN_IF] = if src_if.0 == src_if.1 { Text::Null } else { Text::Span(src_if.0, src_if.1) };
    text[super::OUT_IF] = if dst_if.0 == dst_if.1 { Text::Null } else { Text::Span(dst_if.0, dst_if.1) };
    text[super::SRC] = Text::Span(src.0, src.1);
    text[super::DST] = Text::Span(dst.0, dst.1);
    text[PROTO] = Text::Span(proto.0, proto.1);
    // Neither message carries TCP flags: null, as asa.parse has them.
    text[super::FLAGS] = Text::Null;
    Some(Fields { ts_us, ts_local, ts_add_us: 0, spt, dpt, ip_version, count, text })
}

type Message = (Span, (Span, Span, i32), (Span, Span, i32), Span, &'static [u8], i32);

/// `(?P<verb>Deny) PROTO src SRC dst DST(?: \(type \d+, code \d+\))? by access-group "(?P<acl>[^"]*)"(?: \[[^\]]*\])?$`
fn message_106023(c: &mut Cursor) -> Option<Message> {
    if !c.literal(b"Deny ") {
        return None;
    }
    let proto = protocol(c)?;
    if !c.literal(b" src ") {
        return None;
    }
    let src = ifc_addr(c)?;
    if !c.literal(b" dst ") {
        return None;
    }
    let dst = ifc_addr(c)?;
    let start = c.pos;
    if !(c.literal(b" (type ") && c.digits() > 0 && c.literal(b", code ") && c.digits() > 0 && c.literal(b")")) {
        c.pos = start;
    }
    if !c.literal(b" by access-group \"") {
        return None;
    }
    let at = search::first_of(&c.text[c.pos..], b'"', b'"')?;
    let acl = (c.pos, c.pos + at);
    c.pos += at + 1;
    if c.literal(b" [") {
        let at = search::first_of(&c.text[c.pos..], b']', b']')?;
        c.pos += at + 1;
    }
    if !c.at_end() {
        return None;
    }
    Some((proto, src, dst, acl, b"drop", 1))
}

/// `access-list (?P<acl>\S+) (?P<verb>permitted|denied|est-allowed) PROTO SRC -> DST hit-cnt (?P<count>\d+) .*$`
fn message_106100(c: &mut Cursor) -> Option<Message> {
    if !c.literal(b"access-list ") {
        return None;
    }
    let start = c.pos;
    if c.field(0) == 0 || !c.literal(b" ") {
        return None;
    }
    let acl = (start, c.pos - 1);
    let action: &'static [u8] = if c.literal(b"denied ") {
        b"drop"
    } else if c.literal(b"permitted ") || c.literal(b"est-allowed ") {
        b"accept"
    } else {
        return None;
    };
    let proto = protocol(c)?;
    if !c.literal(b" ") {
        return None;
    }
    let src = ifc_slash_addr(c)?;
    if !c.literal(b" -> ") {
        return None;
    }
    let dst = ifc_slash_addr(c)?;
    if !c.literal(b" hit-cnt ") {
        return None;
    }
    let (count, end) = digits_at(c.text, c.pos)?;
    c.pos = end;
    if count < 1 || !c.literal(b" ") {
        return None;
    }
    Some((proto, src, dst, acl, action, count))
}
