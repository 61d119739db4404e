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

use std::collections::HashMap;

pub mod lines;

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

/// How an RFC 3164 stamp (no year) gets its year, from the Python side
/// (syslog._from_rfc3164): the latest moment a line may carry, on the
/// source's wall clock, as year and (month*32 + day)*86400 + second of day,
/// and the leap years to use for February 29.
#[derive(Clone, Copy)]
pub struct YearRule {
    pub latest_year: i64,
    pub latest_key: i64,
    pub leap_before: i64, // last leap year <= latest_year - 1
    pub leap_latest: i64, // last leap year <= latest_year
}

/// The scan's settings from the Python side, as five i64s.
#[derive(Clone, Copy)]
pub struct Settings {
    pub years: YearRule,
    pub alone: bool, // see scan_line
}

/// syslog.MONTHS, case as written (RE2 matches them case-sensitively).
fn month_number(text: &[u8]) -> Option<i64> {
    Some(match text {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}
const FLAG_WORDS: [&[u8]; 8] = [b"CWR ", b"ECE ", b"URG ", b"ACK ", b"PSH ", b"RST ", b"SYN ", b"FIN "];


/// Byte searches over a whole line, 16 bytes at a step where SSE2 is there
/// (every x86_64), a byte at a time elsewhere. The loads stay inside the
/// slice: only whole 16-byte blocks are loaded, the tail goes byte by byte.
mod search {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    /// RE2's `\s` (ASCII space, tab, newline, form feed, carriage return; not \v), and `also`.
    #[inline(always)]
    fn stops(b: u8, also: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0c | b'\r') || b == also
    }

    /// Index of the first byte of `text` that is white space or `also`, or its length.
    #[inline]
    pub fn field_end(text: &[u8], also: u8) -> usize {
        let mut at = 0;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of x86_64; each load reads text[at..at + 16], in bounds.
            unsafe {
                let wanted = [b' ', b'\t', b'\n', 0x0c, b'\r', also].map(|b| _mm_set1_epi8(b as i8));
                while at + 16 <= text.len() {
                    let block = _mm_loadu_si128(text.as_ptr().add(at) as *const __m128i);
                    let mut hits = _mm_cmpeq_epi8(block, wanted[0]);
                    for w in &wanted[1..] {
                        hits = _mm_or_si128(hits, _mm_cmpeq_epi8(block, *w));
                    }
                    let mask = _mm_movemask_epi8(hits) as u32;
                    if mask != 0 {
                        return at + mask.trailing_zeros() as usize;
                    }
                    at += 16;
                }
            }
        }
        at + text[at..].iter().position(|&b| stops(b, also)).unwrap_or(text.len() - at)
    }

    /// Index of the first `a` or `b` in `text`.
    #[inline]
    pub fn first_of(text: &[u8], a: u8, b: u8) -> Option<usize> {
        let mut at = 0;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in field_end.
            unsafe {
                let (wa, wb) = (_mm_set1_epi8(a as i8), _mm_set1_epi8(b as i8));
                while at + 16 <= text.len() {
                    let block = _mm_loadu_si128(text.as_ptr().add(at) as *const __m128i);
                    let hits = _mm_or_si128(_mm_cmpeq_epi8(block, wa), _mm_cmpeq_epi8(block, wb));
                    let mask = _mm_movemask_epi8(hits) as u32;
                    if mask != 0 {
                        return Some(at + mask.trailing_zeros() as usize);
                    }
                    at += 16;
                }
            }
        }
        text[at..].iter().position(|&c| c == a || c == b).map(|i| at + i)
    }

    /// How many times `byte` occurs in `text`.
    #[inline]
    pub fn count(text: &[u8], byte: u8) -> usize {
        let mut at = 0;
        let mut found = 0;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in field_end.
            unsafe {
                let wanted = _mm_set1_epi8(byte as i8);
                while at + 16 <= text.len() {
                    let block = _mm_loadu_si128(text.as_ptr().add(at) as *const __m128i);
                    found += (_mm_movemask_epi8(_mm_cmpeq_epi8(block, wanted)) as u32).count_ones() as usize;
                    at += 16;
                }
            }
        }
        found + text[at..].iter().filter(|&&c| c == byte).count()
    }

    /// Index of the first `word` (at least one byte long) in `text`.
    #[inline]
    pub fn find(text: &[u8], word: &[u8]) -> Option<usize> {
        let mut at = 0;
        while let Some(i) = first_of(&text[at..], word[0], word[0]) {
            let start = at + i;
            if text[start..].starts_with(word) {
                return Some(start);
            }
            at = start + 1;
        }
        None
    }
}

/// A cursor over one line; every method either advances on success or leaves
/// the position alone.
struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> bool {
        if self.looking_at(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// A byte loop rather than `starts_with`: the words are a few bytes long
    /// and known where this is inlined, where a memcmp call would dominate.
    #[inline(always)]
    fn looking_at(&self, word: &[u8]) -> bool {
        match self.text.get(self.pos..self.pos + word.len()) {
            Some(here) => here.iter().zip(word).all(|(a, b)| a == b),
            None => false,
        }
    }

    /// Bytes while `keep` holds; returns how many.
    #[inline(always)]
    fn run(&mut self, keep: impl Fn(u8) -> bool) -> usize {
        let rest = self.text.get(self.pos..).unwrap_or(&[]);
        // Iterating the slice (not indexing) leaves no bounds check in the loop.
        let count = rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len());
        self.pos += count;
        count
    }

    /// A run of bytes that are not white space nor `also`; returns its length.
    #[inline(always)]
    fn field(&mut self, also: u8) -> usize {
        let rest = self.text.get(self.pos..).unwrap_or(&[]);
        let count = search::field_end(rest, also);
        self.pos += count;
        count
    }

    fn digits(&mut self) -> usize {
        self.run(|b| b.is_ascii_digit())
    }

    /// Exactly `count` bytes satisfying `keep`.
    #[inline(always)]
    fn exactly(&mut self, count: usize, keep: impl Fn(u8) -> bool) -> bool {
        let end = self.pos + count;
        if end <= self.text.len() && self.text[self.pos..end].iter().all(|&b| keep(b)) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// `word` then one or more digits, or nothing consumed.
    fn keyed_digits(&mut self, word: &[u8]) -> bool {
        let start = self.pos;
        if self.literal(word) && self.digits() > 0 {
            return true;
        }
        self.pos = start;
        false
    }
}

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
    let ts_us;
    let mut ts_local = true;
    match c.peek()? {
        b'A'..=b'Z' => {
            let month_text = head.get(c.pos..c.pos + 3)?;
            let month = month_number(month_text)?;
            c.pos += 3;
            if !c.literal(b" ") {
                return None;
            }
            // "(?: \d|\d\d?)": a space-padded day, or one or two digits.
            let day_start = c.pos;
            if c.literal(b" ") {
                if !c.exactly(1, |b| b.is_ascii_digit()) {
                    return None;
                }
            } else if !c.exactly(2, |b| b.is_ascii_digit()) && !c.exactly(1, |b| b.is_ascii_digit()) {
                return None;
            }
            let day_text = &head[day_start..c.pos];
            let day = value(if day_text[0] == b' ' { &day_text[1..] } else { day_text });
            if !c.literal(b" ") {
                return None;
            }
            let seconds = clock(&mut c)?;
            // syslog._from_rfc3164: the latest year that puts the stamp no
            // later than the latest moment; February 29 in the leap year before.
            let key = (month * 32 + day) * SECONDS_PER_DAY + seconds;
            let later = key > years.latest_key;
            let year = if month == 2 && day == 29 {
                if later { years.leap_before } else { years.leap_latest }
            } else if later {
                years.latest_year - 1
            } else {
                years.latest_year
            };
            if !valid_date(year, month, day) {
                return None;
            }
            ts_us = wall_clock_us(year, month, day, seconds, 0);
        }
        b'0'..=b'9' => {
            (ts_us, ts_local) = rfc3339(&mut c)?;
        }
        _ => return None,
    }
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

/// syslog.RFC3339_TIMESTAMP at the cursor: UTC microseconds (or wall-clock
/// ones, and true, when the stamp names no offset).
fn rfc3339(c: &mut Cursor) -> Option<(i64, bool)> {
    let head = c.text;
    let mut ts_local = true;
    let date_start = c.pos;
    let date_ok = c.exactly(4, |b| b.is_ascii_digit())
        && c.literal(b"-")
        && c.exactly(2, |b| b.is_ascii_digit())
        && c.literal(b"-")
        && c.exactly(2, |b| b.is_ascii_digit())
        && c.exactly(1, |b| matches!(b, b'T' | b't' | b' '));
    if !date_ok {
        return None;
    }
    let year = value(&head[date_start..date_start + 4]);
    let month = value(&head[date_start + 5..date_start + 7]);
    let day = value(&head[date_start + 8..date_start + 10]);
    let seconds = clock(c)?;
    let mut fraction_us = 0;
    if matches!(c.peek(), Some(b'.' | b',')) {
        c.pos += 1;
        let start = c.pos;
        let count = c.digits();
        if !(1..=9).contains(&count) {
            return None;
        }
        // Digits past the sixth are below our resolution: truncated.
        for i in 0..6 {
            let digit = if i < count { head[start + i] - b'0' } else { 0 };
            fraction_us = fraction_us * 10 + i64::from(digit);
        }
    }
    let mut offset_s = 0;
    match c.peek() {
        Some(b'Z' | b'z') => {
            c.pos += 1;
            ts_local = false;
        }
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let hours_at = c.pos;
            if !c.exactly(2, |b| b.is_ascii_digit()) {
                return None;
            }
            c.literal(b":");
            let minutes_at = c.pos;
            if !c.exactly(2, |b| b.is_ascii_digit()) {
                return None;
            }
            let hours = value(&head[hours_at..hours_at + 2]);
            let minutes = value(&head[minutes_at..minutes_at + 2]);
            if hours >= 24 || minutes >= 60 {
                return None;
            }
            offset_s = (hours * 3600 + minutes * 60) * if sign == b'-' { -1 } else { 1 };
            ts_local = false;
        }
        _ => {}
    }
    if year < 1 || !valid_date(year, month, day) {
        return None;
    }
    Some((wall_clock_us(year, month, day, seconds, fraction_us) - offset_s * US_PER_SECOND, ts_local))
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

const SECONDS_PER_DAY: i64 = 86_400;
const US_PER_SECOND: i64 = 1_000_000;

/// "HH:MM:SS" as seconds since midnight; None out of range (25:00, 12:60).
fn clock(c: &mut Cursor) -> Option<i64> {
    let start = c.pos;
    let ok = c.exactly(2, |b| b.is_ascii_digit())
        && c.literal(b":")
        && c.exactly(2, |b| b.is_ascii_digit())
        && c.literal(b":")
        && c.exactly(2, |b| b.is_ascii_digit());
    if !ok {
        c.pos = start;
        return None;
    }
    let t = &c.text[start..c.pos];
    let (h, m, s) = (value(&t[0..2]), value(&t[3..5]), value(&t[6..8]));
    if h >= 24 || m >= 60 || s >= 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

/// Decimal digits (checked by the caller) as a number.
fn value(digits: &[u8]) -> i64 {
    digits.iter().fold(0, |n, &b| n * 10 + i64::from(b - b'0'))
}

fn valid_date(year: i64, month: i64, day: i64) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let longest = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=longest).contains(&day)
}

/// Microseconds since 1970 of a proleptic Gregorian date and time, as if in
/// UTC (Howard Hinnant's days_from_civil, as syslog._wall_clock_us).
fn wall_clock_us(year: i64, month: i64, day: i64, seconds: i64, fraction_us: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = if month <= 2 { month + 9 } else { month - 3 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    (days * SECONDS_PER_DAY + seconds) * US_PER_SECOND + fraction_us
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

/// 4 for a plain dotted quad (address.IPV4), 6 for the kernel's fully
/// expanded IPv6 (eight groups of four lower-case hex digits, not
/// IPv4-mapped); None for any other spelling, which the reference handles.
fn address_kind(text: &[u8]) -> Option<u8> {
    if text.len() == 39 {
        let groups_ok = text.chunks(5).all(|g| {
            g[..4].iter().all(|&b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && (g.len() == 4 || g[4] == b':')
        });
        if groups_ok && !text.starts_with(b"0000:0000:0000:0000:0000:ffff:") {
            return Some(6);
        }
        return None;
    }
    // A dotted quad: four octets of 1-3 digits, no leading zero, <= 255.
    let n = text.len();
    let mut i = 0;
    for octet in 0..4 {
        let start = i;
        let mut value = 0u32;
        while i < n && i - start < 3 {
            let digit = text[i].wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            value = value * 10 + u32::from(digit);
            i += 1;
        }
        let len = i - start;
        if len == 0 || value > 255 || (len > 1 && text[start] == b'0') {
            return None;
        }
        if octet < 3 {
            if i >= n || text[i] != b'.' {
                return None;
            }
            i += 1;
        }
    }
    if i == n {
        Some(4)
    } else {
        None
    }
}

/// The kernel's expanded IPv6 the way `ipaddress` compresses it (RFC 5952):
/// leading zeros dropped, the longest run of two or more zero groups (the
/// first of equals) written "::".
fn compress_ipv6(text: &[u8], out: &mut Vec<u8>) {
    let mut groups = [0u16; 8];
    for (i, g) in text.chunks(5).enumerate() {
        groups[i] = g[..4].iter().fold(0u16, |n, &b| n * 16 + (b as char).to_digit(16).unwrap_or(0) as u16);
    }
    let (mut best_at, mut best_len) = (8, 0);
    let mut i = 0;
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len && i - start >= 2 {
                best_at = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    out.clear();
    let hex = b"0123456789abcdef";
    let mut i = 0;
    while i < 8 {
        if i == best_at {
            out.extend_from_slice(b"::");
            i += best_len;
            continue;
        }
        if !(out.is_empty() || out.ends_with(b":")) {
            out.push(b':');
        }
        let g = groups[i];
        let mut started = false;
        for shift in [12u16, 8, 4, 0] {
            let digit = (g >> shift) & 0xf;
            if digit != 0 || started || shift == 0 {
                out.push(hex[digit as usize]);
                started = true;
            }
        }
        i += 1;
    }
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

/// Slots of a dictionary's cache of recent values.
const CACHE_SLOTS: usize = 1024;

/// A dictionary being built: distinct byte strings in first-seen order.
struct Dictionary<'o> {
    plain: bool, // one entry per line, no lookup (see PLAIN)
    index: HashMap<Vec<u8>, i32>,
    offsets: &'o mut [i32],
    data: &'o mut [u8],
    count: usize,
    bytes: usize,
    // Each entry's key as read (the stored text may be respelled).
    keys: Vec<u8>,
    key_spans: Vec<(u32, u32)>,
    // A batch holds few distinct values of most fields and they repeat, so a
    // small cache, slotted by a cheap mix of the key's length and some of its
    // bytes, answers most lookups without SipHash. A wrong slot only misses;
    // the map (randomly keyed) stays the authority.
    cache: [i32; CACHE_SLOTS],
    scratch: Vec<u8>,
}

#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline(always)]
fn slot(key: &[u8]) -> usize {
    // The last eight bytes and the length, multiplied into the top bits:
    // values of a field differ mostly at their end (addresses, ports, hosts).
    let tail = &key[key.len().saturating_sub(8)..];
    let mixed = tail.iter().fold(key.len() as u64, |x, &b| (x << 8) | u64::from(b));
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % CACHE_SLOTS
}

impl<'o> Dictionary<'o> {
    fn new(offsets: &'o mut [i32], data: &'o mut [u8], plain: bool) -> Self {
        offsets[0] = 0;
        Dictionary {
            plain,
            index: HashMap::new(),
            offsets,
            data,
            count: 0,
            bytes: 0,
            keys: Vec::new(),
            key_spans: Vec::new(),
            cache: [-1; CACHE_SLOTS],
            scratch: Vec::new(),
        }
    }

    /// A new entry for `key` (spelled), without looking it up.
    fn append(&mut self, key: &[u8], spell: Option<fn(&[u8], &mut Vec<u8>)>) -> Option<i32> {
        let stored: &[u8] = match spell {
            Some(spell) => {
                spell(key, &mut self.scratch);
                &self.scratch
            }
            None => key,
        };
        let len = stored.len();
        if self.count + 1 >= self.offsets.len() || self.bytes + len > self.data.len() {
            return None;
        }
        self.data[self.bytes..self.bytes + len].copy_from_slice(stored);
        self.bytes += len;
        let code = i32::try_from(self.count).ok()?;
        self.count += 1;
        self.offsets[self.count] = i32::try_from(self.bytes).ok()?;
        Some(code)
    }

    fn key_of(&self, code: i32) -> &[u8] {
        let (from, len) = self.key_spans[code as usize];
        &self.keys[from as usize..(from + len) as usize]
    }

    /// The index of `key`, stored as `key` itself or as what `spell` writes
    /// for it (never longer); None when the output buffers are full.
    fn code(&mut self, key: &[u8], spell: Option<fn(&[u8], &mut Vec<u8>)>) -> Option<i32> {
        if self.plain {
            return self.append(key, spell);
        }
        let at = slot(key);
        let cached = self.cache[at];
        if cached >= 0 && same(self.key_of(cached), key) {
            return Some(cached);
        }
        let code = match self.index.get(key) {
            Some(&code) => code,
            None => {
                let code = self.append(key, spell)?;
                let key_from = u32::try_from(self.keys.len()).ok()?;
                self.keys.extend_from_slice(key);
                self.key_spans.push((key_from, u32::try_from(key.len()).ok()?));
                self.index.insert(key.to_vec(), code);
                code
            }
        };
        self.cache[at] = code;
        Some(code)
    }
}

/// An address as the event model spells it (see `compress_ipv6`).
fn spell_address(text: &[u8], out: &mut Vec<u8>) {
    if text.len() == 39 {
        compress_ipv6(text, out);
    } else {
        out.clear();
        out.extend_from_slice(text);
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
