//! journald's JSON export of kernel netfilter LOG messages, as
//! `pipeline.parsers.journald.parse_arrow` reads it: the object read by
//! `json`, then `MESSAGE` read by the netfilter scanner behind the same
//! fixed syslog header the reference gives it; journald's receive time
//! and host replace the header's.

use super::json::{read_object, Got, Kind};
use super::{Fields, Text, NTEXT};
use crate::cursor::search;
use crate::time::YearRule;
use crate::NO_FLAGS;

/// `journald._HEADER`.
const HEADER: &[u8] = b"Jan  1 00:00:00 journald ";
const FLAG_WORDS: [&[u8]; 8] = [b"CWR", b"ECE", b"URG", b"ACK", b"PSH", b"RST", b"SYN", b"FIN"];
const REALTIME: usize = 0;
const HOSTNAME: usize = 1;
const MESSAGE: usize = 2;

fn wanted(key: &[u8]) -> Option<(usize, Kind)> {
    match key {
        b"__REALTIME_TIMESTAMP" => Some((REALTIME, Kind::Str)),
        b"_HOSTNAME" => Some((HOSTNAME, Kind::Str)),
        b"MESSAGE" => Some((MESSAGE, Kind::Str)),
        _ => None,
    }
}

/// How often `"MESSAGE"` is written in the line. The reference reads every
/// line where `"MESSAGE"\s*:\s*\[` matches as a byte-array message, at any
/// depth; the one top-level key read as a string is the only one allowed.
fn message_keys(line: &[u8]) -> usize {
    let (mut count, mut at) = (0, 0);
    while let Some(i) = search::find(&line[at..], b"MESSAGE\"") {
        if at + i > 0 && line[at + i - 1] == b'"' {
            count += 1;
        }
        at += i + 1;
    }
    count
}

pub fn scan_line(line: &[u8], years: YearRule, scratch: &mut Vec<u8>) -> Option<Fields> {
    let mut got = [Got::Missing; 3];
    read_object(line, wanted, &mut got, &mut [false; 3], scratch)?;
    let (realtime, message) = match (got[REALTIME], got[MESSAGE]) {
        (Got::Str(realtime), Got::Str(message)) => (realtime, message),
        _ => return None,
    };
    if message_keys(line) != 1 {
        return None;
    }
    // `^\d{1,17}$`
    let digits = realtime.bytes(line, scratch);
    if !(1..=17).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ts_us = digits.iter().fold(0i64, |n, &b| n * 10 + i64::from(b - b'0'));
    // The netfilter line, behind the header, where its spans will point.
    let body = scratch.len();
    scratch.extend_from_slice(HEADER);
    if message.decoded {
        // Control bytes (escaped: a raw one is not JSON) would meet RE2's `.`: left to the reference.
        if scratch[message.from..message.to].iter().any(|&b| b < 0x20) {
            return None;
        }
        scratch.extend_from_within(message.from..message.to);
    } else {
        scratch.extend_from_slice(&line[message.from..message.to]);
    }
    let found = crate::scan_line(&scratch[body..], years, false)?;
    let at = |span: (usize, usize)| Text::Scratch(body + span.0, body + span.1);
    let mut fields = [Text::Null; NTEXT];
    fields[super::HOST] = match got[HOSTNAME] {
        Got::Str(host) => host.text(),
        _ => Text::Null,
    };
    fields[super::PREFIX] = at(found.prefix);
    fields[super::IN_IF] = at(found.in_if);
    fields[super::OUT_IF] = at(found.out_if);
    fields[super::SRC] = at(found.src);
    fields[super::DST] = at(found.dst);
    fields[super::PROTO] = at(found.proto);
    if found.flags != NO_FLAGS {
        let start = scratch.len();
        for (bit, word) in FLAG_WORDS.iter().enumerate() {
            if found.flags & (1 << (7 - bit)) != 0 {
                if scratch.len() > start {
                    scratch.push(b' ');
                }
                scratch.extend_from_slice(word);
            }
        }
        fields[super::FLAGS] = Text::Scratch(start, scratch.len());
    }
    let (spt, dpt) = found.ports.unwrap_or((-1, -1));
    Some(Fields { ts_us, ts_local: false, ts_add_us: 0, spt, dpt, ip_version: found.ip_version, count: 1, text: fields })
}
