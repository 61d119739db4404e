//! The hot path of `pipeline.parsers.netfilter`: one pass over a batch of
//! netfilter LOG lines (an Arrow string column), claiming each line it can read
//! with certainty and leaving every other line to the pyarrow reference path.
//!
//! Why native: pyarrow's RE2 kernels spend ~2.8 µs a line on captures and
//! copies; one byte loop per line is ~10× cheaper. Why it stays small and
//! safe: it never decides that a line is bad. A line it does not fully
//! understand is simply not claimed, and the reference parser (which also
//! explains rejects) reads it. The Python side checks what needs judgement
//! (calendar, address syntax, port range) once per distinct value, and any
//! claimed line failing those checks goes to the reference path too. So the
//! scanner only has to agree with the reference on the lines it claims; a
//! differential test (tests/test_netfilter_native.py) holds it to that.
//!
//! Attackers write parts of these lines. Every read is bounds-checked (plain
//! slices, no `unsafe` beyond turning the caller's buffers into slices),
//! output capacity is checked before every write, and the per-batch
//! dictionaries use the standard library's randomly keyed SipHash, so chosen
//! addresses cannot turn a lookup into a linear scan.

pub mod address;
pub mod cursor;
pub mod dictionary;
pub mod formats;
pub mod lines;
pub mod time;

use address::{address_kind, spell_address};
use cursor::{search, Cursor};
use dictionary::Dictionary;
pub use time::YearRule;
use time::{rfc3339, stamp, value};

/// Per-line outputs, column-major `NCOLS × n` i32s. A column is defined only
/// where `STATUS` is 1 (the line was claimed).
pub const STATUS: usize = 0;
pub const TS_LOCAL: usize = 1; // 1: the timestamp is wall-clock time in the source's zone, 0: UTC
pub const HOST: usize = 2;
pub const PREFIX: usize = 3; // raw prefix: surrounding spaces and quotes kept
pub const IN_IF: usize = 4;
pub const OUT_IF: usize = 5;
pub const SRC: usize = 6; // address, as ipaddress's `compressed` spells it
pub const DST: usize = 7;
pub const PROTO: usize = 8;
pub const SPT: usize = 9; // -1: no ports
pub const DPT: usize = 10;
pub const FLAGS: usize = 11; // bit 7 CWR .. bit 0 FIN; NO_FLAGS: none to read
pub const IP_VERSION: usize = 12;
pub const NCOLS: usize = 13;
/// The flag code of a line without TCP flags to read: the index of null in
/// the Python side's table of flag texts.
pub const NO_FLAGS: i32 = 256;

/// The dictionaries: each claimed line's text for these fields is one entry
/// of its field's dictionary, and the line holds the entry's index.
/// Addresses are the exception: a batch holds nearly as many sources as
/// lines (scans, spoofed floods), so hashing them would cost more than it
/// saves. Their "dictionaries" are plain columns, one entry per line (empty
/// where the line was not claimed), and the index is the line's own.
pub const DICT_FIELDS: [usize; 7] = [HOST, PREFIX, IN_IF, OUT_IF, SRC, DST, PROTO];
pub const NDICTS: usize = DICT_FIELDS.len();
const PLAIN: [bool; NDICTS] = [false, false, false, false, true, true, false];


/// The scan's settings from the Python side, as five i64s.
#[derive(Clone, Copy)]
pub struct Settings {
    pub years: YearRule,
    pub alone: bool, // see scan_line
}

const FLAG_WORDS: [&[u8]; 8] = [b"CWR ", b"ECE ", b"URG ", b"ACK ", b"PSH ", b"RST ", b"SYN ", b"FIN "];




/// What the header scan found.
struct Header {
    ts_us: i64,    // microseconds since 1970, UTC or wall clock
    ts_local: bool, // wall clock in the source's zone: the Python side converts it
    host: (usize, usize),
    prefix_start: usize,
}

/// The syslog header, tag, uptime stamp and caller id in `head` (the line up
/// to its first "IN="), the way syslog.HEADER and netfilter._TAG read them.
fn header(head: &[u8], years: YearRule) -> Option<Header> {
    let mut c = Cursor { text: head, pos: 0 };
    if c.literal(b"<") {
        if !(1..=3).contains(&c.digits()) || !c.literal(b">") {
            return None;
        }
        if c.literal(b"1 ") {
            return rfc5424(c);
        }
    } else if c.literal(b"1 ") {
        // RFC 5424 without its PRI, as some relays write it to files. No RFC 3164
        // header starts "1 " (a month name or a four-digit year comes first).
        return rfc5424(c);
    }
    let (ts_us, ts_local) = stamp(&mut c, years)?;
    if !c.literal(b" ") {
        return None;
    }
    // The host: a word with no "=", not ending in ":" (that is a tag), not
    // RFC 5424's "-", followed by a plain space. Anything else: not claimed.
    let host_start = c.pos;
    c.field(b'=');
    let host = (host_start, c.pos);
    let word = &head[host_start..c.pos];
    if word.is_empty() || word == b"-" || word.ends_with(b":") || !c.literal(b" ") {
        return None;
    }
    tag(&mut c);
    Some(Header { ts_us, ts_local, host, prefix_start: c.pos })
}


/// The rest of an RFC 5424 header after "<PRI>1 " or "1 ", the way syslog.HEADER's
/// first branch and netfilter._TAG read it:
/// `TIMESTAMP HOST APP PROCID MSGID SD [BOM]`. A host of "-" (no host: the
/// reference fills in the context's) and structured data it cannot read with
/// certainty leave the line unclaimed.
fn rfc5424(mut c: Cursor) -> Option<Header> {
    if !c.peek()?.is_ascii_digit() {
        return None;
    }
    let (ts_us, ts_local) = rfc3339(&mut c)?;
    if !c.literal(b" ") {
        return None;
    }
    // HOST, APP-NAME, PROCID, MSGID: `\S+` each.
    let mut host = (c.pos, c.pos);
    for field in 0..4 {
        let start = c.pos;
        if c.field(b' ') == 0 {
            return None;
        }
        if field == 0 {
            host = (start, c.pos);
        }
        if !c.literal(b" ") {
            return None;
        }
    }
    if &c.text[host.0..host.1] == b"-" {
        return None;
    }
    if !structured_data(&mut c) || !c.literal(b" ") {
        return None;
    }
    c.literal("\u{FEFF}".as_bytes());
    tag(&mut c);
    Some(Header { ts_us, ts_local, host, prefix_start: c.pos })
}

/// syslog._STRUCTURED_DATA: "-", or SD-ELEMENTs `[NAME( NAME="VALUE")*]`,
/// NAME 1 to 32 of `[^\s="\]]`, VALUE escaping '"', '\' and ']' with '\'.
/// Names outside ASCII (RE2 counts characters, not bytes) and a backslash
/// before a line break (RE2's `.` stops there) are not claimed.
fn structured_data(c: &mut Cursor) -> bool {
    if c.literal(b"-") {
        return true;
    }
    let start = c.pos;
    let mut elements = 0;
    while c.literal(b"[") {
        if !sd_name(c) {
            c.pos = start;
            return false;
        }
        while c.literal(b" ") {
            if !(sd_name(c) && c.literal(b"=\"") && sd_value(c)) {
                c.pos = start;
                return false;
            }
        }
        if !c.literal(b"]") {
            c.pos = start;
            return false;
        }
        elements += 1;
    }
    elements > 0
}

fn sd_name(c: &mut Cursor) -> bool {
    let count = c.run(|b| b.is_ascii() && !matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r' | b'=' | b'"' | b']'));
    (1..=32).contains(&count) && !matches!(c.peek(), Some(b) if !b.is_ascii())
}

/// A PARAM-VALUE after its opening quote, through its closing quote.
fn sd_value(c: &mut Cursor) -> bool {
    loop {
        match c.peek() {
            None => return false,
            Some(b'"') => {
                c.pos += 1;
                return true;
            }
            Some(b'\\') => {
                match c.text.get(c.pos + 1) {
                    None | Some(b'\n') => return false,
                    Some(_) => c.pos += 2,
                }
            }
            Some(_) => c.pos += 1,
        }
    }
}


/// netfilter._TAG: `(?:(?:kernel|ulogd)(?:\[\d+\])?: )?(?:\[ *\d+\.\d+\])?(?:\[ *[CT]\d+\])? ?`,
/// each part optional and taken whenever it is there.
fn tag(c: &mut Cursor) {
    let start = c.pos;
    if c.literal(b"kernel") || c.literal(b"ulogd") {
        let name_end = c.pos;
        let bracketed = c.literal(b"[") && c.digits() > 0 && c.literal(b"]") && c.literal(b": ");
        if !bracketed {
            c.pos = name_end;
            if !c.literal(b": ") {
                c.pos = start;
            }
        }
    }
    let start = c.pos;
    if !(c.literal(b"[") && {
        c.run(|b| b == b' ');
        c.digits() > 0
    } && c.literal(b".")
        && c.digits() > 0
        && c.literal(b"]"))
    {
        c.pos = start;
    }
    let start = c.pos;
    if !(c.literal(b"[") && {
        c.run(|b| b == b' ');
        c.exactly(1, |b| b == b'C' || b == b'T')
    } && c.digits() > 0
        && c.literal(b"]"))
    {
        c.pos = start;
    }
    c.literal(b" ");
}

/// What a claimed line holds: spans are offsets into the line.
pub struct Line {
    pub ts_us: i64,
    pub ts_local: bool,
    pub host: (usize, usize),
    pub prefix: (usize, usize),
    pub in_if: (usize, usize),
    pub out_if: (usize, usize),
    pub src: (usize, usize),
    pub dst: (usize, usize),
    pub ip_version: i32,
    pub proto: (usize, usize),
    pub ports: Option<(i32, i32)>,
    pub flags: i32,
}

const PORT_PROTOCOLS: [&[u8]; 4] = [b"TCP", b"UDP", b"UDPLITE", b"SCTP"];
const NAMED_PROTOCOLS: [&[u8]; 8] = [b"TCP", b"UDP", b"UDPLITE", b"SCTP", b"ICMP", b"ICMPv6", b"ESP", b"AH"];
const MAX_PORT: i32 = 65_535;

/// Read one line, or None when the reference path must. `alone`: claim
/// only lines no other format's signature can match (parsers.auto tries
/// ASA's "%ASA-" and filterlog's commas before netfilter's), so that a line
/// claimed while the format is detected is one detection gives netfilter.
pub fn scan_line(line: &[u8], years: YearRule, alone: bool) -> Option<Line> {
    if alone && search::first_of(line, b'%', b',').is_some() {
        return None;
    }
    let at = search::find(line, b"IN=")?;
    let head = &line[..at];
    let h = header(head, years)?;
    let prefix = (h.prefix_start, at);
    // An "=" before IN= may mean the cut is at the wrong IN= (netfilter._read_fast).
    if head[h.prefix_start..].contains(&b'=') {
        return None;
    }
    let mut c = Cursor { text: line, pos: at + 3 };
    let start = c.pos;
    c.field(b'=');
    let in_if = (start, c.pos);
    if !c.literal(b" OUT=") {
        return None;
    }
    let start = c.pos;
    c.field(b'=');
    let out_if = (start, c.pos);
    if c.literal(b" MAC=") {
        c.field(b' ');
    }
    if !c.literal(b" SRC=") {
        return None; // PHYSIN=, TUNNEL=, MACSRC= and the like: rare, left to RE2
    }
    let start = c.pos;
    c.field(b'=');
    let src = (start, c.pos);
    if !c.literal(b" DST=") {
        return None;
    }
    let start = c.pos;
    c.field(b'=');
    let dst = (start, c.pos);
    let ip_version = match (address_kind(&line[src.0..src.1])?, address_kind(&line[dst.0..dst.1])?) {
        (4, 4) => 4,
        (6, 6) => 6,
        _ => return None,
    };
    c.keyed_digits(b" LEN=");
    if c.looking_at(b" TOS=") {
        if !ipv4_header(&mut c) {
            return None;
        }
    } else {
        c.keyed_digits(b" TC=");
        c.keyed_digits(b" HOPLIMIT=");
        c.keyed_digits(b" FLOWLBL=");
    }
    if !c.literal(b" PROTO=") {
        return None;
    }
    let transport = c.pos;
    if c.run(|b| b.is_ascii_alphanumeric()) == 0 {
        return None;
    }
    let proto = (transport, c.pos);
    let proto_text = &line[proto.0..proto.1];
    let numbered = proto_text.len() <= 3 && proto_text.iter().all(|b| b.is_ascii_digit()) && value(proto_text) <= 255;
    if !(numbered || NAMED_PROTOCOLS.iter().any(|p| *p == proto_text)) {
        return None;
    }
    let takes_ports = PORT_PROTOCOLS.iter().any(|p| *p == proto_text);
    let mut ports = None;
    if c.looking_at(b" SPT=") {
        c.pos += 5;
        let spt = number(&mut c)?;
        if !c.literal(b" DPT=") {
            return None;
        }
        let dpt = number(&mut c)?;
        if !takes_ports || spt > MAX_PORT || dpt > MAX_PORT {
            return None;
        }
        ports = Some((spt, dpt));
    }
    if !(c.at_end() || c.peek() == Some(b' ')) {
        return None;
    }
    if ports.is_none() && takes_ports {
        return None; // a later fragment or a cut header: the reference excuses or rejects it
    }
    let flags = if ports.is_some() && proto_text == b"TCP" { tcp_flags(&mut c) } else { NO_FLAGS };
    Some(Line {
        ts_us: h.ts_us,
        ts_local: h.ts_local,
        host: h.host,
        prefix,
        in_if,
        out_if,
        src,
        dst,
        ip_version,
        proto,
        ports,
        flags,
    })
}


/// One to nine digits (netfilter._TRANSPORT's `\d{1,9}`).
fn number(c: &mut Cursor) -> Option<i32> {
    let start = c.pos;
    let count = c.digits();
    if !(1..=9).contains(&count) {
        return None;
    }
    Some(c.text[start..c.pos].iter().fold(0i32, |n, &b| n * 10 + i32::from(b - b'0')))
}

/// netfilter._IPV4_HEADER, up to " PROTO=".
fn ipv4_header(c: &mut Cursor) -> bool {
    let hex = |b: u8| b.is_ascii_hexdigit();
    if !c.literal(b" TOS=") {
        return false;
    }
    let tos = c.pos;
    if !(c.literal(b"0x") && c.exactly(2, hex)) {
        c.pos = tos;
        if !c.exactly(2, hex) {
            return false;
        }
    }
    if !(c.literal(b" PREC=0x") && c.exactly(2, hex) && c.keyed_digits(b" TTL=") && c.keyed_digits(b" ID="))
    {
        return false;
    }
    for flag in [&b" CE"[..], b" DF", b" MF"] {
        if c.looking_at(flag) && matches!(c.text.get(c.pos + flag.len()), Some(b' ')) {
            c.pos += flag.len();
        }
    }
    c.keyed_digits(b" FRAG:");
    let start = c.pos;
    if c.literal(b" OPT (") {
        c.run(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        if !c.literal(b")") {
            c.pos = start;
        }
    }
    true
}

/// TCP flags the way netfilter._TCP_TO_WINDOW and _TCP_FLAGS read them,
/// from just after the ports; NO_FLAGS where they do not fit.
fn tcp_flags(c: &mut Cursor) -> i32 {
    if !c.literal(b" ") {
        return NO_FLAGS;
    }
    let start = c.pos;
    if !(c.keyed_digits(b"SEQ=") && c.keyed_digits(b" ACK=") && c.literal(b" ")) {
        c.pos = start;
    }
    if !(c.literal(b"WINDOW=") && c.digits() > 0 && c.literal(b" ")) {
        return NO_FLAGS;
    }
    let start = c.pos;
    if !(c.literal(b"RES=0x") && c.exactly(2, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && c.literal(b" ")) {
        c.pos = start;
    }
    c.literal(b"AE ");
    let mut bits = 0;
    for (i, word) in FLAG_WORDS.iter().enumerate() {
        if c.literal(word) {
            bits |= 1 << (7 - i);
        }
    }
    if c.literal(b"URGP=") {
        bits
    } else {
        NO_FLAGS
    }
}



/// Lines looked at before a batch none of which is claimed is given up on.
/// A batch is one file's or one sender's lines, nearly always all of one
/// shape: when the first of them are not claimed, the rest will not be
/// either, and the reference path reading the whole batch as it is costs
/// less than reading the unclaimed lines again after this pass (copied out,
/// then merged back in order).
pub const LOOKAHEAD: usize = 64;

/// Scan the lines of an Arrow string column (`offsets` has one more entry
/// than there are lines). Returns how many were claimed, None when the
/// batch was given up on (no line among the first `LOOKAHEAD` claimed; the
/// outputs are then incomplete), or what was wrong with the buffers.
#[allow(clippy::too_many_arguments)]
pub fn scan(
    data: &[u8],
    offsets: &[i32],
    settings: Settings,
    rows: &mut [i32],
    ts: &mut [i64],
    dict_offsets: &mut [i32],
    dict_data: &mut [u8],
    dict_sizes: &mut [i64],
) -> Result<Option<usize>, &'static str> {
    let n = offsets.len().checked_sub(1).ok_or("no offsets")?;
    if rows.len() < NCOLS * n || ts.len() < n || dict_offsets.len() < NDICTS * (n + 1) || dict_sizes.len() < 2 * NDICTS {
        return Err("output buffers too small");
    }
    let capacity = dict_data.len() / NDICTS;
    if capacity == 0 {
        return Err("dictionary buffers too small");
    }
    let mut dicts: Vec<Dictionary> = dict_offsets
        .chunks_mut(n + 1)
        .zip(dict_data.chunks_mut(capacity))
        .take(NDICTS)
        .zip(PLAIN)
        .map(|((o, d), plain)| Dictionary::new(o, d, plain))
        .collect();
    let spellers: [Option<fn(&[u8], &mut Vec<u8>)>; NDICTS] =
        [None, None, None, None, Some(spell_address), Some(spell_address), None];
    let mut claimed = 0;
    for i in 0..n {
        if i == LOOKAHEAD && claimed == 0 {
            return Ok(None);
        }
        let from = usize::try_from(offsets[i]).map_err(|_| "bad offset")?;
        let to = usize::try_from(offsets[i + 1]).map_err(|_| "bad offset")?;
        let line = data.get(from..to).ok_or("offsets outside the data")?;
        rows[STATUS * n + i] = 0;
        let found = match scan_line(line, settings.years, settings.alone) {
            Some(found) => found,
            None => {
                // Plain columns keep one entry per line.
                for (k, dict) in dicts.iter_mut().enumerate() {
                    if PLAIN[k] {
                        dict.append(b"", None).ok_or("dictionary buffers full")?;
                    }
                }
                continue;
            }
        };
        let span = |s: (usize, usize)| &line[s.0..s.1];
        let fields = [found.host, found.prefix, found.in_if, found.out_if, found.src, found.dst, found.proto];
        for (k, field) in fields.iter().enumerate() {
            let code = dicts[k].code(span(*field), spellers[k]).ok_or("dictionary buffers full")?;
            rows[DICT_FIELDS[k] * n + i] = code;
        }
        ts[i] = found.ts_us;
        rows[TS_LOCAL * n + i] = i32::from(found.ts_local);
        let (spt, dpt) = found.ports.unwrap_or((-1, -1));
        rows[SPT * n + i] = spt;
        rows[DPT * n + i] = dpt;
        rows[FLAGS * n + i] = found.flags;
        rows[IP_VERSION * n + i] = found.ip_version;
        rows[STATUS * n + i] = 1;
        claimed += 1;
    }
    for (k, dict) in dicts.iter().enumerate() {
        dict_sizes[2 * k] = dict.count as i64;
        dict_sizes[2 * k + 1] = dict.bytes as i64;
    }
    Ok(Some(claimed))
}

/// The C entry point (ctypes). `offsets` has `n + 1` entries into `data`;
/// `settings` is a `Settings` as 5 i64s (the `YearRule`, then `alone`); `rows` holds `NCOLS * n` i32s, `ts` n
/// i64s, `dict_offsets` `NDICTS * (n + 1)` i32s, `dict_data` `NDICTS` equal
/// areas, `dict_sizes` `2 * NDICTS` i64s (entries and bytes of each
/// dictionary). Returns the number of claimed lines, -2 when the batch was
/// given up on (see `LOOKAHEAD`), or -1 on an error (bad buffers, or a
/// panic): for both the caller uses the reference path.
///
/// # Safety
/// Each pointer must be valid for the length given for it.
#[no_mangle]
pub unsafe extern "C" fn fireplot_scan_netfilter(
    data: *const u8,
    data_len: usize,
    offsets: *const i32,
    n: usize,
    settings: *const i64,
    rows: *mut i32,
    ts: *mut i64,
    dict_offsets: *mut i32,
    dict_data: *mut u8,
    dict_data_len: usize,
    dict_sizes: *mut i64,
) -> i64 {
    if offsets.is_null() || settings.is_null() || rows.is_null() || ts.is_null() || dict_offsets.is_null() || dict_data.is_null() || dict_sizes.is_null() {
        return -1;
    }
    let empty: [u8; 0] = [];
    let data = if data_len == 0 || data.is_null() { &empty[..] } else { std::slice::from_raw_parts(data, data_len) };
    let offsets = std::slice::from_raw_parts(offsets, n + 1);
    let given = std::slice::from_raw_parts(settings, 5);
    let years = YearRule { latest_year: given[0], latest_key: given[1], leap_before: given[2], leap_latest: given[3] };
    let settings = Settings { years, alone: given[4] != 0 };
    let rows = std::slice::from_raw_parts_mut(rows, NCOLS * n);
    let ts = std::slice::from_raw_parts_mut(ts, n);
    let dict_offsets = std::slice::from_raw_parts_mut(dict_offsets, NDICTS * (n + 1));
    let dict_data = std::slice::from_raw_parts_mut(dict_data, dict_data_len);
    let dict_sizes = std::slice::from_raw_parts_mut(dict_sizes, 2 * NDICTS);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scan(data, offsets, settings, rows, ts, dict_offsets, dict_data, dict_sizes)
    }));
    match outcome {
        Ok(Ok(Some(claimed))) => claimed as i64,
        Ok(Ok(None)) => -2,
        _ => -1,
    }
}

/// The C entry point of `lines::cut`: `data` is `data_len` bytes of whole
/// lines, `starts` holds `n` i64s, `value_offsets` `n + 1` i32s, `values`
/// `values_len` bytes. Returns the bytes written to `values`; -2 when the
/// chunk is not the ordinary case (invalid UTF-8, a line over `max_line`) and
/// the caller's own path must cut it; -1 on bad buffers or a panic.
///
/// # Safety
/// Each pointer must be valid for the length given for it.
#[no_mangle]
pub unsafe extern "C" fn fireplot_cut_lines(
    data: *const u8,
    data_len: usize,
    base: i64,
    max_line: usize,
    starts: *mut i64,
    n: usize,
    value_offsets: *mut i32,
    values: *mut u8,
    values_len: usize,
) -> i64 {
    if data.is_null() || starts.is_null() || value_offsets.is_null() || values.is_null() {
        return -1;
    }
    let data = std::slice::from_raw_parts(data, data_len);
    let starts = std::slice::from_raw_parts_mut(starts, n);
    let value_offsets = std::slice::from_raw_parts_mut(value_offsets, n + 1);
    let values = std::slice::from_raw_parts_mut(values, values_len);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lines::cut(data, base, max_line, starts, value_offsets, values)
    }));
    match outcome {
        Ok(Ok(written)) => written as i64,
        Ok(Err(lines::Refusal::Unusual)) => -2,
        _ => -1,
    }
}

/// The C entry point of `lines::count`.
///
/// # Safety
/// `data` must be valid for `data_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fireplot_count_lines(data: *const u8, data_len: usize) -> usize {
    if data.is_null() {
        return 0;
    }
    lines::count(std::slice::from_raw_parts(data, data_len))
}

/// Layout constants, so the Python side can check it loaded the library it expects.
#[no_mangle]
pub extern "C" fn fireplot_scan_layout() -> u64 {
    // Bumped with any change of the C interface: 2 = five settings, 3 = NO_FLAGS,
    // 4 = plain address columns, 5 = fireplot_cut_lines and fireplot_count_lines,
    // 6 = -2 for a batch given up on.
    (6 << 16) | ((NCOLS as u64) << 8) | NDICTS as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEARS: YearRule = YearRule { latest_year: 2024, latest_key: 0, leap_before: 2020, leap_latest: 2024 };
    const BODY: &str = "DROP IN=eth0 OUT= MAC= SRC=203.0.113.9 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 \
                        TTL=52 ID=1 PROTO=TCP SPT=40123 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 ";

    fn read(head: &str) -> Option<(Line, String)> {
        let line = format!("{head}{BODY}");
        scan_line(line.as_bytes(), YEARS, false).map(|found| (found, line))
    }

    #[test]
    fn rfc5424_with_pri_is_claimed() {
        let (found, line) = read("<4>1 2026-11-22T00:00:00.043000+01:00 fw1 kernel - - - ").expect("claimed");
        assert_eq!(&line[found.host.0..found.host.1], "fw1");
        assert_eq!(&line[found.prefix.0..found.prefix.1], "DROP ");
        assert!(!found.ts_local);
        // 2026-11-21T23:00:00.043Z, as Python's datetime.fromisoformat has it.
        assert_eq!(found.ts_us, 1_795_302_000_043_000);
    }

    #[test]
    fn rfc5424_without_pri_is_claimed_alike() {
        let (found, line) = read("1 2026-11-22T00:00:00.043000+01:00 fw1 kernel - - - ").expect("claimed");
        assert_eq!(&line[found.host.0..found.host.1], "fw1");
        assert_eq!(&line[found.prefix.0..found.prefix.1], "DROP ");
        assert_eq!(found.ts_us, 1_795_302_000_043_000);
        assert!(read("1 Nov 22 00:00:00 fw1 kernel - - - ").is_none());
    }

    #[test]
    fn rfc5424_structured_data_bom_and_uptime_are_read() {
        let (found, line) =
            read("<13>1 2026-11-22T00:00:00Z fw1 k 1 m [a x=\"1\\\"]\"][b] \u{FEFF}[ 12.5] ").expect("claimed");
        assert_eq!(&line[found.prefix.0..found.prefix.1], "DROP ");
    }

    #[test]
    fn rfc5424_lines_it_cannot_be_sure_of_are_left_alone() {
        for head in [
            "<4>1 2026-11-22T00:00:00Z - kernel - - - ",      // nil host: the reference fills it in
            "<4>1 2026-11-22T00:00:00Z fw kernel - - [m x=1] ", // unquoted value
            "<4>1 2026-11-22T00:00:00Z fw kernel - - [nø] ",    // RE2 counts characters
            "<4>1 2026-11-22T00:00:00Z fw kernel - -  ",        // no structured data
            "<4>1 Nov 22 00:00:00 fw kernel - - - ",            // RFC 3164 stamp
            "<4>2 2026-11-22T00:00:00Z fw kernel - - - ",
        ] {
            assert!(read(head).is_none(), "{head}");
        }
    }

    #[test]
    fn a_batch_without_a_claimed_line_among_its_first_is_given_up_on() {
        let bad = "<4>1 2026-11-22T00:00:00Z - kernel - - - ".to_string() + BODY;
        let good = "<4>1 2026-11-22T00:00:00Z fw kernel - - - ".to_string() + BODY;
        for (leading, declined) in [(LOOKAHEAD, true), (LOOKAHEAD - 1, false)] {
            let lines: Vec<&str> = std::iter::repeat(bad.as_str()).take(leading).chain([good.as_str(); 3]).collect();
            let data: Vec<u8> = lines.concat().into_bytes();
            let mut offsets = vec![0i32];
            for l in &lines {
                offsets.push(offsets.last().unwrap() + l.len() as i32);
            }
            let n = lines.len();
            let (mut rows, mut ts) = (vec![0; NCOLS * n], vec![0; n]);
            let (mut dict_offsets, mut dict_data, mut sizes) = (vec![0; NDICTS * (n + 1)], vec![0; NDICTS * data.len()], vec![0; 2 * NDICTS]);
            let settings = Settings { years: YEARS, alone: false };
            let got = scan(&data, &offsets, settings, &mut rows, &mut ts, &mut dict_offsets, &mut dict_data, &mut sizes);
            assert_eq!(got, Ok(if declined { None } else { Some(3) }));
        }
    }
}
