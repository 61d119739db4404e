//! MikroTik RouterOS firewall lines, as `pipeline.parsers.mikrotik.LINE` reads them:
//!
//! ```text
//! ^(?:(?P<ros>mmm/\d\d(?:/\d{4})? \d\d:\d\d:\d\d) |HEADER)(?:(?P<topics>[a-z]+(?:,[a-z]+)+) )?
//! (?P<prefix>[^,]*?): in:(?P<in>[^,]*?) out:(?P<out>[^,]*?), (?:src-mac [0-9a-fA-F:]+, )?
//! proto (?P<proto>[A-Za-z0-9-]+)(?: \((?P<flags>[^)]*)\))?, SRC->DST(?:, NAT .*)?, len \d+.*$
//! ```

use super::{digits_at, protocol_name, Fields, Format, Text, NTEXT, PORT_PROTOCOLS, PROTO};
use crate::address::any_kind;
use crate::cursor::{search, Cursor};
use crate::time::{clock, rfc3164_us, stamp, valid_date, value, wall_clock_us, YearRule};

pub static FORMAT: Format = Format { scan_line, spell: spellers() };

const fn spellers() -> [Option<super::Speller>; NTEXT] {
    let mut spell: [Option<super::Speller>; NTEXT] = [None; NTEXT];
    spell[PROTO] = Some(spell_proto);
    spell
}

const LOWER_MONTHS: [&[u8]; 12] =
    [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];

/// The protocol as mikrotik.parse names it: upper case; a number by
/// `protocol_names`; ICMPV6, IPV6-ICMP and UDP-LITE by their netfilter names.
fn spell_proto(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(text.iter().map(|b| b.to_ascii_uppercase()));
    let name: Option<&[u8]> = if out.iter().all(|b| b.is_ascii_digit()) {
        protocol_name(out)
    } else {
        match &out[..] {
            b"ICMPV6" | b"IPV6-ICMP" => Some(b"ICMPv6"),
            b"UDP-LITE" => Some(b"UDPLITE"),
            _ => None,
        }
    };
    if let Some(name) = name {
        out.clear();
        out.extend_from_slice(name);
    }
}

/// RouterOS's own stamp, `mmm/dd HH:MM:SS` or `mmm/dd/yyyy HH:MM:SS`, and the space after it.
fn routeros_stamp(c: &mut Cursor, years: YearRule) -> Option<(i64, bool)> {
    let month = LOWER_MONTHS.iter().position(|m| c.looking_at(m))? as i64 + 1;
    c.pos += 3;
    let day_at = c.pos + 1;
    if !(c.literal(b"/") && c.exactly(2, |b| b.is_ascii_digit())) {
        return None;
    }
    let day = value(&c.text[day_at..day_at + 2]);
    let year_at = c.pos + 1;
    let year = if c.literal(b"/") {
        if !c.exactly(4, |b| b.is_ascii_digit()) {
            return None;
        }
        Some(value(&c.text[year_at..year_at + 4]))
    } else {
        None
    };
    if !c.literal(b" ") {
        return None;
    }
    let seconds = clock(c)?;
    if !c.literal(b" ") {
        return None;
    }
    let ts = match year {
        Some(year) if valid_date(year, month, day) => wall_clock_us(year, month, day, seconds, 0),
        Some(_) => return None,
        None => rfc3164_us(month, day, seconds, years)?,
    };
    Some((ts, true))
}

/// `(?:\[(?P<6>[0-9A-Fa-f:.]+)\]|(?P<4>[0-9.]+))(?::(?P<pt>\d+))?`: the address span and the port, if any.
fn endpoint(c: &mut Cursor) -> Option<((usize, usize), Option<i32>)> {
    let address = if c.literal(b"[") {
        let start = c.pos;
        if c.run(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') == 0 || !c.literal(b"]") {
            return None;
        }
        (start, c.pos - 1)
    } else {
        let start = c.pos;
        if c.run(|b| b.is_ascii_digit() || b == b'.') == 0 {
            return None;
        }
        (start, c.pos)
    };
    let mut port = None;
    if c.peek() == Some(b':') && matches!(c.text.get(c.pos + 1), Some(b) if b.is_ascii_digit()) {
        let (number, end) = digits_at(c.text, c.pos + 1)?;
        c.pos = end;
        port = Some(number);
    }
    Some((address, port))
}

pub fn scan_line(line: &[u8], years: YearRule) -> Option<Fields> {
    let mut c = Cursor { text: line, pos: 0 };
    let mut host = Text::Null;
    let (ts_us, ts_local) = if matches!(c.peek(), Some(b'a'..=b'z')) {
        routeros_stamp(&mut c, years)?
    } else {
        if c.literal(b"<") {
            // RFC 5424 ("<PRI>1 "): left to the reference.
            if !(1..=3).contains(&c.digits()) || !c.literal(b">") || c.looking_at(b"1 ") {
                return None;
            }
        }
        let found = stamp(&mut c, years)?;
        if !c.literal(b" ") {
            return None;
        }
        // `(?:(?P<host>[^\s=]*[^\s:=]) )?`: the next word, when it is one.
        let start = c.pos;
        let length = c.field(b'=');
        let word = &line[start..c.pos];
        if length > 0 && !word.ends_with(b":") && c.literal(b" ") {
            // "-" names no host (syslog.Header).
            if word != b"-" {
                host = Text::Span(start, start + length);
            }
        } else {
            c.pos = start;
        }
        found
    };
    // Topics: `[a-z]+(?:,[a-z]+)+ `, taken when they are there.
    let start = c.pos;
    let run = c.run(|b| b.is_ascii_lowercase() || b == b',');
    let topics = &line[start..start + run];
    let shaped = topics.contains(&b',')
        && !topics.starts_with(b",")
        && !topics.ends_with(b",")
        && !topics.windows(2).any(|w| w == b",,");
    if !(shaped && c.literal(b" ")) {
        c.pos = start;
    }
    // The prefix and the interfaces: each the shortest text, without a comma, before what follows.
    let rest = &line[c.pos..];
    let at = search::find(rest, b": in:")?;
    if rest[..at].contains(&b',') {
        return None;
    }
    let prefix = Text::Span(c.pos, c.pos + at);
    c.pos += at + 5;
    let (in_if, out_if);
    {
        let rest = &line[c.pos..];
        let at = search::find(rest, b" out:")?;
        if rest[..at].contains(&b',') {
            return None;
        }
        in_if = Text::Span(c.pos, c.pos + at);
        c.pos += at + 5;
        let rest = &line[c.pos..];
        let at = search::first_of(rest, b',', b',')?;
        out_if = Text::Span(c.pos, c.pos + at);
        c.pos += at;
        if !c.literal(b", ") {
            return None;
        }
    }
    if c.literal(b"src-mac ") {
        if c.run(|b| b.is_ascii_hexdigit() || b == b':') == 0 || !c.literal(b", ") {
            return None;
        }
    }
    if !c.literal(b"proto ") {
        return None;
    }
    let start = c.pos;
    if c.run(|b| b.is_ascii_alphanumeric() || b == b'-') == 0 {
        return None;
    }
    let proto = (start, c.pos);
    let mut flags = None;
    if c.literal(b" (") {
        let start = c.pos;
        let at = search::first_of(&line[start..], b')', b')')?;
        flags = Some((start, start + at));
        c.pos = start + at + 1;
    }
    if !c.literal(b", ") {
        return None;
    }
    let (src, spt) = endpoint(&mut c)?;
    if !c.literal(b"->") {
        return None;
    }
    let (dst, dpt) = endpoint(&mut c)?;
    if c.looking_at(b", NAT ") {
        // `.*` then `, len \d+`: any ", len " followed by a digit after it.
        let mut from = c.pos + 6;
        loop {
            let at = search::find(&line[from..], b", len ")?;
            if matches!(line.get(from + at + 6), Some(b) if b.is_ascii_digit()) {
                break;
            }
            from += at + 1;
        }
    } else if !(c.literal(b", len ") && c.digits() > 0) {
        return None;
    }
    let ip_version = match (any_kind(&line[src.0..src.1])?, any_kind(&line[dst.0..dst.1])?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    let mut spelled = Vec::new();
    spell_proto(&line[proto.0..proto.1], &mut spelled);
    let (spt, dpt) = if PORT_PROTOCOLS.iter().any(|p| *p == &spelled[..]) {
        // A port protocol without both ports is the reference's to judge.
        match (spt, dpt) {
            (Some(s), Some(d)) if s <= super::MAX_PORT && d <= super::MAX_PORT => (s, d),
            _ => return None,
        }
    } else {
        (-1, -1)
    };
    let flags = if &spelled[..] == b"TCP" {
        match flags {
            Some((a, b)) => Text::Span(a, b),
            None => Text::Fixed(b""),
        }
    } else {
        Text::Null
    };
    let mut text = [Text::Null; NTEXT];
    text[super::HOST] = host;
    text[super::PREFIX] = prefix;
    text[super::IN_IF] = in_if;
    text[super::OUT_IF] = out_if;
    text[super::SRC] = Text::Span(src.0, src.1);
    text[super::DST] = Text::Span(dst.0, dst.1);
    text[PROTO] = Text::Span(proto.0, proto.1);
    text[super::FLAGS] = flags;
    Some(Fields { ts_us, ts_local, ts_add_us: 0, spt, dpt, ip_version, count: 1, text })
}
