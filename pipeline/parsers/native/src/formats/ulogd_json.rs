//! ulogd2's JSON output, as `pipeline.parsers.ulogd_json.parse_arrow` reads
//! it: the keys of its schema read by `json` (each of its type, or null, or
//! missing), then every check that path and `assemble.finish` make. Only
//! lines with a usable epoch time are claimed: the `timestamp` text is read
//! in the source's zone by the reference, which is rare enough to leave it.

use super::json::{read_object, Got, Kind, Str};
use super::{protocol_name, Fields, Text, NTEXT, PORT_PROTOCOLS};
use crate::address::any_kind;
use crate::time::{YearRule, US_PER_SECOND};

const SEC: usize = 0;
const USEC: usize = 1;
const FAMILY: usize = 2;
const PROTOCOL: usize = 3;
const SRC_PORT: usize = 4;
const DEST_PORT: usize = 5;
const TCP_URG: usize = 6; // then ACK, PSH, RST, SYN, FIN
const TCP_SYN: usize = 10;
const TIMESTAMP: usize = 12;
const DVC: usize = 13;
const PREFIX: usize = 14;
const SRC_IP: usize = 15;
const DEST_IP: usize = 16;
const IN: usize = 17;
const OUT: usize = 18;
const ACTION: usize = 19;
const KEYS: usize = 20;
const TCP_WORDS: [&[u8]; 6] = [b"URG", b"ACK", b"PSH", b"RST", b"SYN", b"FIN"];
/// `ulogd_json._MAX_SECONDS`: 9999-12-31T23:59:59Z.
const MAX_SECONDS: i64 = 253_402_300_799;

fn wanted(key: &[u8]) -> Option<(usize, Kind)> {
    let slot = match key {
        b"oob.time.sec" => SEC,
        b"oob.time.usec" => USEC,
        b"oob.family" => FAMILY,
        b"ip.protocol" => PROTOCOL,
        b"src_port" => SRC_PORT,
        b"dest_port" => DEST_PORT,
        b"tcp.urg" => TCP_URG,
        b"tcp.ack" => TCP_URG + 1,
        b"tcp.psh" => TCP_URG + 2,
        b"tcp.rst" => TCP_URG + 3,
        b"tcp.syn" => TCP_SYN,
        b"tcp.fin" => TCP_URG + 5,
        b"timestamp" => TIMESTAMP,
        b"dvc" => DVC,
        b"oob.prefix" => PREFIX,
        b"src_ip" => SRC_IP,
        b"dest_ip" => DEST_IP,
        b"oob.in" => IN,
        b"oob.out" => OUT,
        b"action" => ACTION,
        _ => return None,
    };
    Some((slot, if slot < TIMESTAMP { Kind::Int } else { Kind::Str }))
}

fn int(got: Got) -> Option<i64> {
    match got {
        Got::Int(n) => Some(n),
        _ => None,
    }
}

fn string(got: Got) -> Option<Str> {
    match got {
        Got::Str(s) => Some(s),
        _ => None,
    }
}

pub fn scan_line(line: &[u8], _: YearRule, scratch: &mut Vec<u8>) -> Option<Fields> {
    let mut got = [Got::Missing; KEYS];
    read_object(line, wanted, &mut got, &mut [false; KEYS], scratch)?;
    let sec = int(got[SEC])?;
    let usec = int(got[USEC]).unwrap_or(0);
    if !(0..=MAX_SECONDS).contains(&sec) || !(0..US_PER_SECOND).contains(&usec) {
        return None; // the reference reads `timestamp` instead, or rejects the line
    }
    let (src, dst) = (string(got[SRC_IP])?, string(got[DEST_IP])?);
    let (src_text, dst_text) = (src.bytes(line, scratch), dst.bytes(line, scratch));
    let proto = int(got[PROTOCOL])?;
    if !(0..=255).contains(&proto) {
        return None;
    }
    if let Some(family) = int(got[FAMILY]) {
        if src_text.contains(&b':') != (family == 10) {
            return None;
        }
    }
    let ip_version = match (any_kind(src_text)?, any_kind(dst_text)?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    let action: Option<&'static [u8]> = match string(got[ACTION]) {
        None => None,
        Some(action) => match action.bytes(line, scratch) {
            b"blocked" => Some(b"drop"),
            b"allowed" => Some(b"accept"),
            _ => return None,
        },
    };
    let mut text = [Text::Null; NTEXT];
    // The number as text, as `protocol_names` sees it (0 to 255: no sign, no leading zero).
    let start = scratch.len();
    for (k, divisor) in [100, 10, 1].iter().enumerate() {
        if proto >= *divisor || k == 2 {
            scratch.push(b'0' + (proto / divisor % 10) as u8);
        }
    }
    let name = protocol_name(&scratch[start..]);
    text[super::PROTO] = match name {
        Some(name) => {
            scratch.truncate(start);
            Text::Fixed(name)
        }
        None => Text::Scratch(start, scratch.len()),
    };
    let takes_ports = name.map_or(false, |name| PORT_PROTOCOLS.iter().any(|p| *p == name));
    let port = |slot: usize| -> Option<i32> {
        match int(got[slot]) {
            None => Some(-1),
            Some(port) if (0..=i64::from(super::MAX_PORT)).contains(&port) => Some(port as i32),
            Some(_) => None,
        }
    };
    let (spt, dpt) = if takes_ports { (port(SRC_PORT)?, port(DEST_PORT)?) } else { (-1, -1) };
    // The tcp.* keys of a TCP header; with no tcp.syn, flags unknown.
    if name == Some(b"TCP") && int(got[TCP_SYN]).is_some() {
        let start = scratch.len();
        for (k, word) in TCP_WORDS.iter().enumerate() {
            if int(got[TCP_URG + k]) == Some(1) {
                if scratch.len() > start {
                    scratch.push(b' ');
                }
                scratch.extend_from_slice(word);
            }
        }
        text[super::FLAGS] = Text::Scratch(start, scratch.len());
    }
    text[super::HOST] = match string(got[DVC]) {
        Some(device) if device.bytes(line, scratch) != b"Netfilter" => device.text(),
        _ => Text::Null,
    };
    // A missing prefix is the empty one: its action is the default.
    text[super::PREFIX] = string(got[PREFIX]).map_or(Text::Fixed(b""), |p| p.text());
    text[super::ACTION] = action.map_or(Text::Null, Text::Fixed);
    text[super::IN_IF] = string(got[IN]).map_or(Text::Null, |s| s.text());
    text[super::OUT_IF] = string(got[OUT]).map_or(Text::Null, |s| s.text());
    text[super::SRC] = src.text();
    text[super::DST] = dst.text();
    Some(Fields { ts_us: sec * US_PER_SECOND + usec, ts_local: false, ts_add_us: 0, spt, dpt, ip_version, count: 1, text })
}
