//! The scanners of the formats other than netfilter, one module each, behind
//! one C entry point and one output layout (`pipeline.parsers.native_formats`).
//!
//! Each format's `scan_line` follows its RE2 pattern in the Python parser the
//! way RE2 does (at every choice the alternative RE2 tries first: an optional
//! part when it is there, the longest run for a greedy one, the shortest for
//! a lazy one) and gives up on the line at the first step that does not fit,
//! where RE2 would go back and try another way. It also checks everything
//! `assemble.finish` would reject a line for (time, addresses, families,
//! ports, counts), so a claimed line is one the pyarrow path turns into an
//! event, and the same event. Every other line is left to that path, which
//! also explains rejects; the differential tests (tests/test_formats_native.py)
//! hold the two to the same events and rejects.

use crate::address::spell_any;
use crate::cursor::search;
use crate::dictionary::Dictionary;
use crate::time::YearRule;

pub mod asa;
pub mod filterlog;
pub mod journald;
pub mod json;
pub mod mikrotik;
pub mod pf;
pub mod ulogd_json;
pub mod vpc;
pub mod winfw;

/// Per-line numbers, column-major `NCOLS × n` i32s, defined where `STATUS` is 1.
pub const STATUS: usize = 0;
pub const TS_LOCAL: usize = 1; // 1: wall-clock time in the source's zone, 0: UTC
pub const SPT: usize = 2; // -1: none
pub const DPT: usize = 3; // -1: none
pub const IP_VERSION: usize = 4;
pub const COUNT: usize = 5;
/// Microseconds of `ts_us` that are a fraction after the stamp's zone is
/// applied (pf: tcpdump's `.ffffff` is added to the syslog-style stamp's
/// instant, so a wall-clock time in a DST gap keeps it).
pub const TS_ADD: usize = 6;
/// Then one column per text field: the index of the line's value in the
/// field's dictionary, -1 for null.
pub const FIRST_TEXT: usize = 7;
pub const HOST: usize = 0;
pub const PREFIX: usize = 1;
pub const ACTION: usize = 2;
pub const IN_IF: usize = 3;
pub const OUT_IF: usize = 4;
pub const SRC: usize = 5;
pub const DST: usize = 6;
pub const PROTO: usize = 7;
pub const FLAGS: usize = 8;
pub const NTEXT: usize = 9;
pub const NCOLS: usize = FIRST_TEXT + NTEXT;
/// Addresses are plain columns (one entry per line), as in the netfilter scanner.
const PLAIN: [bool; NTEXT] = [false, false, false, false, false, true, true, false, false];

/// How a claimed line's field reads: a span of the line, a fixed text, two
/// spans joined by a space, a span of the line's scratch text (decoded JSON
/// strings: see `Decoding`), or null.
#[derive(Clone, Copy)]
pub enum Text {
    Null,
    Span(usize, usize),
    Scratch(usize, usize),
    Fixed(&'static [u8]),
    Joined((usize, usize), (usize, usize)),
}

/// What a format read from a line it claims.
pub struct Fields {
    pub ts_us: i64, // including ts_add_us
    pub ts_local: bool,
    pub ts_add_us: i32,
    pub spt: i32,
    pub dpt: i32,
    pub ip_version: i32,
    pub count: i32,
    pub text: [Text; NTEXT],
}

/// Writes a span's stored spelling (always the same for the same span text).
pub type Speller = fn(&[u8], &mut Vec<u8>);

/// A format: how it reads a line, and how each span field is spelled.
pub struct Format {
    pub scan_line: fn(&[u8], YearRule) -> Option<Fields>,
    pub spell: [Option<Speller>; NTEXT],
}

/// A format whose texts may need decoding (JSON escapes): its reader writes
/// them to a scratch buffer, emptied before each line, that `Text::Scratch` points into.
pub type Decoding = fn(&[u8], YearRule, &mut Vec<u8>) -> Option<Fields>;

/// The JSON forms of netfilter, by the number the Python side passes.
fn decoding(id: i64) -> Option<Decoding> {
    match id {
        9 => Some(journald::scan_line),
        10 => Some(ulogd_json::scan_line),
        _ => None,
    }
}

/// By the number the Python side passes (native_formats.FORMATS).
fn format(id: i64) -> Option<&'static Format> {
    match id {
        1 => Some(&mikrotik::FORMAT),
        2 => Some(&asa::FORMAT),
        3 => Some(&filterlog::FORMAT),
        4 => Some(&winfw::EITHER),
        5 => Some(&winfw::STANDARD),
        6 => Some(&winfw::WITH_PID),
        7 => Some(&vpc::FORMAT),
        8 => Some(&pf::FORMAT),
        _ => None,
    }
}

pub const MAX_PORT: i32 = 65_535;

/// `\d+` at `text[at..]`, 1 to 9 digits, as a number; with where it ends.
pub fn digits_at(text: &[u8], at: usize) -> Option<(i32, usize)> {
    let rest = text.get(at..)?;
    let count = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    if !(1..=9).contains(&count) {
        return None;
    }
    Some((rest[..count].iter().fold(0i32, |n, &b| n * 10 + i32::from(b - b'0')), at + count))
}

/// Protocol numbers as `assemble.protocol_names` names them (exactly these
/// digit strings; any other number stays as written).
pub fn protocol_name(digits: &[u8]) -> Option<&'static [u8]> {
    Some(match digits {
        b"1" => b"ICMP",
        b"6" => b"TCP",
        b"17" => b"UDP",
        b"50" => b"ESP",
        b"51" => b"AH",
        b"58" => b"ICMPv6",
        b"132" => b"SCTP",
        b"136" => b"UDPLITE",
        _ => return None,
    })
}

pub const PORT_PROTOCOLS: [&[u8]; 4] = [b"TCP", b"UDP", b"UDPLITE", b"SCTP"];

/// Lines looked at before a batch none of which is claimed is given up on (as `crate::LOOKAHEAD`).
pub const LOOKAHEAD: usize = crate::LOOKAHEAD;

/// Scan a batch with `read`, a format's line reader (given a scratch buffer,
/// for `Decoding` formats), spelling span fields with `spell` (see
/// `crate::scan`, whose buffers these mirror: `NTEXT` dictionaries). `json`:
/// the reader refuses a raw line break itself. Ok(None): given up on (no
/// line among the first `LOOKAHEAD` claimed).
#[allow(clippy::too_many_arguments)]
pub fn scan(
    read: impl Fn(&[u8], YearRule, &mut Vec<u8>) -> Option<Fields>,
    spell: [Option<Speller>; NTEXT],
    json: bool,
    data: &[u8],
    offsets: &[i32],
    years: YearRule,
    rows: &mut [i32],
    ts: &mut [i64],
    dict_offsets: &mut [i32],
    dict_data: &mut [u8],
    dict_sizes: &mut [i64],
) -> Result<Option<usize>, &'static str> {
    let n = offsets.len().checked_sub(1).ok_or("no offsets")?;
    if rows.len() < NCOLS * n || ts.len() < n || dict_offsets.len() < NTEXT * (n + 1) || dict_sizes.len() < 2 * NTEXT {
        return Err("output buffers too small");
    }
    let capacity = dict_data.len() / NTEXT;
    if capacity == 0 {
        return Err("dictionary buffers too small");
    }
    let mut dicts: Vec<Dictionary> = dict_offsets
        .chunks_mut(n + 1)
        .zip(dict_data.chunks_mut(capacity))
        .take(NTEXT)
        .zip(PLAIN)
        .map(|((o, d), plain)| Dictionary::new(o, d, plain))
        .collect();
    let mut joined = Vec::new();
    let mut scratch = Vec::new();
    let mut claimed = 0;
    for i in 0..n {
        if i == LOOKAHEAD && claimed == 0 {
            return Ok(None);
        }
        let from = usize::try_from(offsets[i]).map_err(|_| "bad offset")?;
        let to = usize::try_from(offsets[i + 1]).map_err(|_| "bad offset")?;
        let line = data.get(from..to).ok_or("offsets outside the data")?;
        rows[STATUS * n + i] = 0;
        // RE2's "." stops at a newline: a line holding one is the reference's
        // (the JSON reader refuses a raw one itself: no second pass over the line).
        scratch.clear();
        let found = if !json && search::first_of(line, b'\n', b'\n').is_some() { None } else { read(line, years, &mut scratch) };
        let found = match found {
            Some(found) => found,
            None => {
                for (k, dict) in dicts.iter_mut().enumerate() {
                    if PLAIN[k] {
                        dict.append(b"", None).ok_or("dictionary buffers full")?;
                    }
                }
                continue;
            }
        };
        for (k, text) in found.text.iter().enumerate() {
            let speller = if k == SRC || k == DST { Some(spell_any as Speller) } else { spell[k] };
            let code = match *text {
                Text::Null if PLAIN[k] => dicts[k].append(b"", None).map(|_| -1),
                Text::Null => Some(-1),
                Text::Span(a, b) => dicts[k].code(&line[a..b], speller),
                Text::Scratch(a, b) => dicts[k].code(&scratch[a..b], speller),
                Text::Fixed(value) => dicts[k].code(value, None),
                Text::Joined((a, b), (c, d)) => {
                    joined.clear();
                    joined.extend_from_slice(&line[a..b]);
                    joined.push(b' ');
                    joined.extend_from_slice(&line[c..d]);
                    dicts[k].code(&joined, None)
                }
            };
            rows[(FIRST_TEXT + k) * n + i] = code.ok_or("dictionary buffers full")?;
        }
        ts[i] = found.ts_us;
        rows[TS_LOCAL * n + i] = i32::from(found.ts_local);
        rows[TS_ADD * n + i] = found.ts_add_us;
        rows[SPT * n + i] = found.spt;
        rows[DPT * n + i] = found.dpt;
        rows[IP_VERSION * n + i] = found.ip_version;
        rows[COUNT * n + i] = found.count;
        rows[STATUS * n + i] = 1;
        claimed += 1;
    }
    for (k, dict) in dicts.iter().enumerate() {
        dict_sizes[2 * k] = dict.count as i64;
        dict_sizes[2 * k + 1] = dict.bytes as i64;
    }
    Ok(Some(claimed))
}

/// The C entry point: `format` a number of `format`; `years` the `YearRule`
/// as 4 i64s; the buffers as for `fireplot_scan_netfilter`, with `NCOLS` and
/// `NTEXT` of this module. Each dictionary gets `dict_data_len / NTEXT`
/// bytes, so one claimed line's text must fit in that (a Joined field is at
/// most its line plus one byte: the caller gives each a line more). Returns
/// the claimed lines, -2 when the batch was given up on, -1 on an error (an
/// unknown format, bad buffers, a panic).
///
/// # Safety
/// Each pointer must be valid for the length given for it.
#[no_mangle]
pub unsafe extern "C" fn fireplot_scan_format(
    format_id: i64,
    data: *const u8,
    data_len: usize,
    offsets: *const i32,
    n: usize,
    years: *const i64,
    rows: *mut i32,
    ts: *mut i64,
    dict_offsets: *mut i32,
    dict_data: *mut u8,
    dict_data_len: usize,
    dict_sizes: *mut i64,
) -> i64 {
    let decoder = decoding(format_id);
    let format = format(format_id);
    if decoder.is_none() && format.is_none() {
        return -1;
    }
    if offsets.is_null() || years.is_null() || rows.is_null() || ts.is_null() || dict_offsets.is_null() || dict_data.is_null() || dict_sizes.is_null() {
        return -1;
    }
    let empty: [u8; 0] = [];
    let data = if data_len == 0 || data.is_null() { &empty[..] } else { std::slice::from_raw_parts(data, data_len) };
    let offsets = std::slice::from_raw_parts(offsets, n + 1);
    let given = std::slice::from_raw_parts(years, 4);
    let years = YearRule { latest_year: given[0], latest_key: given[1], leap_before: given[2], leap_latest: given[3] };
    let rows = std::slice::from_raw_parts_mut(rows, NCOLS * n);
    let ts = std::slice::from_raw_parts_mut(ts, n);
    let dict_offsets = std::slice::from_raw_parts_mut(dict_offsets, NTEXT * (n + 1));
    let dict_data = std::slice::from_raw_parts_mut(dict_data, dict_data_len);
    let dict_sizes = std::slice::from_raw_parts_mut(dict_sizes, 2 * NTEXT);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match (decoder, format) {
        (Some(read), _) => scan(read, [None; NTEXT], true, data, offsets, years, rows, ts, dict_offsets, dict_data, dict_sizes),
        (None, Some(f)) => scan(|line, years, _: &mut Vec<u8>| (f.scan_line)(line, years), f.spell, false, data, offsets, years, rows, ts, dict_offsets, dict_data, dict_sizes),
        (None, None) => Err("unknown format"),
    }));
    match outcome {
        Ok(Ok(Some(claimed))) => claimed as i64,
        Ok(Ok(None)) => -2,
        _ => -1,
    }
}

/// This module's layout, so the Python side can check it loaded the library it expects.
#[no_mangle]
pub extern "C" fn fireplot_formats_layout() -> u64 {
    // 2 = TS_ADD, 3 = the JSON forms of netfilter (formats 9 and 10).
    (3 << 16) | ((NCOLS as u64) << 8) | NTEXT as u64
}
