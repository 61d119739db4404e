//! OpenBSD pf lines as tcpdump prints them, as `pipeline.parsers.pf.LINE`
//! reads them: tcpdump's own stamp (with its fraction) or a syslog header
//! and `pf:`, the rule, action, direction and interface, `SRC[.PORT] >
//! DST[.PORT]: ` and the payload, whose first word decides the protocol.

use super::{digits_at, Fields, Format, Text, NTEXT};
use crate::address::any_kind;
use crate::cursor::{search, Cursor};
use crate::time::{rfc3339, stamp, YearRule};

pub static FORMAT: Format = Format { scan_line, spell: [None; NTEXT] };

/// Flag codes as two hex digits (the keys the Python side spells as words).
static HEX_PAIRS: [u8; 512] = {
    let digits = b"0123456789abcdef";
    let mut table = [0u8; 512];
    let mut i = 0;
    while i < 256 {
        table[2 * i] = digits[i >> 4];
        table[2 * i + 1] = digits[i & 15];
        i += 1;
    }
    table
};

/// tcpdump's flag letters as bits, CWR first (bit 7) to FIN (bit 0), as `flag_words` orders them.
fn letter_bit(letter: u8) -> u8 {
    match letter {
        b'W' => 0x80,
        b'E' => 0x40,
        b'U' => 0x20,
        b'.' => 0x10,
        b'P' => 0x08,
        b'R' => 0x04,
        b'S' => 0x02,
        b'F' => 0x01,
        _ => 0,
    }
}

fn is_flag_letter(b: u8) -> bool {
    matches!(b, b'S' | b'F' | b'R' | b'P' | b'W' | b'E' | b'U' | b'.')
}

/// `(?P<src>\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:]*)(?:\.(?P<pt>\d+))?`: address span, port if any.
fn endpoint(c: &mut Cursor) -> Option<((usize, usize), Option<i32>)> {
    let start = c.pos;
    let mut quad = true;
    for group in 0..4 {
        let count = c.digits();
        if !(1..=3).contains(&count) || (group < 3 && !c.literal(b".")) {
            quad = false;
            break;
        }
    }
    if !quad {
        c.pos = start;
        c.run(|b| b.is_ascii_hexdigit());
        if !c.literal(b":") {
            return None;
        }
        c.run(|b| b.is_ascii_hexdigit() || b == b':');
    }
    let address = (start, c.pos);
    let mut port = None;
    if c.peek() == Some(b'.') && matches!(c.text.get(c.pos + 1), Some(b) if b.is_ascii_digit()) {
        let (number, end) = digits_at(c.text, c.pos + 1)?;
        c.pos = end;
        port = Some(number);
    }
    Some((address, port))
}

pub fn scan_line(line: &[u8], years: YearRule) -> Option<Fields> {
    let mut c = Cursor { text: line, pos: 0 };
    let mut host = Text::Null;
    let mut fraction_us = 0;
    // The syslog branch first, as in LINE: a stamp, a space, an optional host, "pf[pid]: ".
    let syslog_branch = {
        let mut s = Cursor { text: line, pos: 0 };
        let pri_ok = !s.literal(b"<") || ((1..=3).contains(&s.digits()) && s.literal(b">"));
        let found = if pri_ok { stamp(&mut s, years) } else { None };
        match found {
            Some(ts) if s.literal(b" ") => {
                let start = s.pos;
                let length = s.run(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b':'));
                let mut named = None;
                if length > 0 && s.literal(b" ") {
                    named = Some((start, start + length));
                } else {
                    s.pos = start;
                }
                let tagged = |s: &mut Cursor| {
                    if !s.literal(b"pf") {
                        return false;
                    }
                    let at = s.pos;
                    if !(s.literal(b"[") && s.digits() > 0 && s.literal(b"]")) {
                        s.pos = at;
                    }
                    s.literal(b": ")
                };
                if tagged(&mut s) {
                    Some((ts, named, s.pos))
                } else if named.is_some() {
                    // The host taken was no host: without it, "pf" may come right after the stamp.
                    s.pos = start;
                    if tagged(&mut s) {
                        Some((ts, None, s.pos))
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
            _ => None,
        }
    };
    let (ts_us, ts_local) = match syslog_branch {
        Some((ts, named, end)) => {
            if let Some((a, b)) = named {
                host = Text::Span(a, b);
            }
            c.pos = end;
            ts
        }
        None => {
            // tcpdump's stamp: RFC 3164, or `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`, then `.ffffff`.
            let ts = if matches!(c.peek(), Some(b'0'..=b'9')) {
                // Read within its 19 bytes: what follows is tcpdump's fraction, not the stamp's.
                let start = c.pos;
                if line.len() < start + 19 || line[start + 10] != b' ' {
                    return None;
                }
                let mut bounded = Cursor { text: &line[..start + 19], pos: start };
                let (ts, local) = rfc3339(&mut bounded)?;
                if bounded.pos != start + 19 || !local {
                    return None;
                }
                c.pos = start + 19;
                ts
            } else {
                let (ts, local) = stamp(&mut c, years)?;
                if !local {
                    return None;
                }
                ts
            };
            if c.literal(b".") {
                let start = c.pos;
                let count = c.digits();
                if !(1..=6).contains(&count) {
                    return None;
                }
                for i in 0..6 {
                    let digit = if i < count { line[start + i] - b'0' } else { 0 };
                    fraction_us = fraction_us * 10 + i64::from(digit);
                }
            }
            if !c.literal(b" ") {
                return None;
            }
            (ts, true)
        }
    };
    // `(?P<rule>rule \S+?\(\w+\)):? (?:\[uid \d+, pid \d+\] )?`
    let rule_start = c.pos;
    if !c.literal(b"rule ") {
        return None;
    }
    let word_end = c.pos + search::field_end(&line[c.pos..], 0);
    let open = c.pos + 1 + search::first_of(line.get(c.pos + 1..word_end)?, b'(', b'(')?;
    c.pos = open + 1;
    if c.run(|b| b.is_ascii_alphanumeric() || b == b'_') == 0 || !c.literal(b")") {
        return None;
    }
    let rule = (rule_start, c.pos);
    c.literal(b":");
    if !c.literal(b" ") {
        return None;
    }
    let at = c.pos;
    if !(c.literal(b"[uid ") && c.digits() > 0 && c.literal(b", pid ") && c.digits() > 0 && c.literal(b"] ")) {
        c.pos = at;
    }
    // `(?P<action>[a-z-]+) (?P<dir>in|out) on (?P<if>\S+): `
    let action: &'static [u8] = if c.literal(b"block ") {
        b"drop"
    } else if c.literal(b"pass ") || c.literal(b"match ") {
        b"accept"
    } else {
        return None;
    };
    let inbound = if c.literal(b"in on ") {
        true
    } else if c.literal(b"out on ") {
        false
    } else {
        return None;
    };
    let start = c.pos;
    let run = search::field_end(&line[start..], 0);
    if run < 2 || line[start + run - 1] != b':' || line.get(start + run) != Some(&b' ') {
        return None;
    }
    let interface = (start, start + run - 1);
    c.pos = start + run + 1;
    let (src, spt) = endpoint(&mut c)?;
    if !c.literal(b" > ") {
        return None;
    }
    let (dst, dpt) = endpoint(&mut c)?;
    if !c.literal(b": ") {
        return None;
    }
    let payload = &line[c.pos..];
    let ip_version = match (any_kind(&line[src.0..src.1])?, any_kind(&line[dst.0..dst.1])?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    if spt.map_or(false, |p| p > super::MAX_PORT) || dpt.map_or(false, |p| p > super::MAX_PORT) {
        return None;
    }
    // The protocol: TCP by its payload (flags, "Flags [", "[|tcp]") when there are ports, else UDP; without
    // ports the payload's first word.
    let letters = payload.iter().take_while(|&&b| is_flag_letter(b)).count();
    let old_style = letters > 0 && matches!(payload.get(letters), None | Some(b' '));
    let new_style = payload.starts_with(b"Flags [");
    let truncated = payload.starts_with(b"[|tcp]");
    let tcp = spt.is_some() && (old_style || new_style || truncated);
    let proto: &'static [u8] = if tcp {
        b"TCP"
    } else if spt.is_some() {
        b"UDP"
    } else {
        let word = payload.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        match payload[..word].to_ascii_lowercase().as_slice() {
            b"icmp" => b"ICMP",
            b"icmp6" => b"ICMPv6",
            b"esp" => b"ESP",
            b"ah" => b"AH",
            b"igmp" => b"2",
            b"gre" => b"47",
            _ => return None,
        }
    };
    let flags = if tcp && !truncated {
        let written: &[u8] = if new_style {
            let inner = &payload[7..];
            match search::first_of(inner, b']', b']') {
                Some(at) => &inner[..at],
                None => b"", // "Flags [" unclosed: no letters read
            }
        } else {
            &payload[..letters]
        };
        let mut bits = written.iter().fold(0u8, |bits, &b| bits | letter_bit(b));
        if search::find(payload, b" ack ").is_some() {
            bits |= letter_bit(b'.');
        }
        let at = 2 * bits as usize;
        Text::Fixed(&HEX_PAIRS[at..at + 2])
    } else {
        Text::Null
    };
    let mut text = [Text::Null; NTEXT];
    text[super::HOST] = host;
    text[super::PREFIX] = Text::Span(rule.0, rule.1);
    text[super::ACTION] = Text::Fixed(action);
    text[if inbound { super::IN_IF } else { super::OUT_IF }] = Text::Span(interface.0, interface.1);
    text[super::SRC] = Text::Span(src.0, src.1);
    text[super::DST] = Text::Span(dst.0, dst.1);
    text[super::PROTO] = Text::Fixed(proto);
    text[super::FLAGS] = flags;
    Some(Fields {
        ts_us: ts_us + fraction_us,
        ts_local,
        ts_add_us: fraction_us as i32,
        spt: spt.unwrap_or(-1),
        dpt: dpt.unwrap_or(-1),
        ip_version,
        count: 1,
        text,
    })
}
