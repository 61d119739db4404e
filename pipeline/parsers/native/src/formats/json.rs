//! A strict reader of one JSON object per line: the part of JSON that the
//! JSON forms of netfilter (journald's export, ulogd2's JSON plugin) use.
//!
//! It reads a line the way `pipeline.parsers.jsonlines` (pyarrow.json with
//! an explicit schema, unknown keys ignored) would, or gives up: any doubt
//! means the line is not claimed and the pyarrow path reads it and explains
//! it. So it gives up on more than pyarrow refuses: escaped keys (pyarrow
//! matches `"\u0073"` as `s`), a wanted key written twice (pyarrow fails the
//! line, even for two nulls), a wanted value of the wrong type, lone
//! surrogates, invalid UTF-8, raw control bytes in a string, white space
//! other than space and tab, nesting deeper than `MAX_DEPTH`, NaN and
//! Infinity, integers of more than 18 digits, numbers with more than 18
//! significant digits or an exponent of more than two digits, and anything
//! after the object but spaces and tabs. Unknown keys may repeat (pyarrow
//! ignores them) and hold any value, checked for syntax all the same.

/// What a wanted key holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
}

/// A string value: a span of the line when it holds no escape, else of the
/// scratch buffer, where its decoded text was written.
#[derive(Clone, Copy)]
pub struct Str {
    pub decoded: bool,
    pub from: usize,
    pub to: usize,
}

impl Str {
    pub fn bytes<'a>(&self, line: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        if self.decoded {
            &scratch[self.from..self.to]
        } else {
            &line[self.from..self.to]
        }
    }

    pub fn text(&self) -> super::Text {
        if self.decoded {
            super::Text::Scratch(self.from, self.to)
        } else {
            super::Text::Span(self.from, self.to)
        }
    }
}

/// A wanted key's value; null reads as missing, as in pyarrow.
#[derive(Clone, Copy)]
pub enum Got {
    Missing,
    Str(Str),
    Int(i64),
}

/// Arrays and objects inside an unknown key's value, at most.
pub const MAX_DEPTH: usize = 32;
/// Digits of a number that both readers hold exactly (an i64, a double's integer part).
const MAX_DIGITS: usize = 18;

/// Read `line` as one JSON object. `wanted` names the keys read, by their
/// index in `got` and kind; each is written at most once (a second time
/// gives up). Decoded strings are appended to `scratch`. None: not claimed.
pub fn read_object(
    line: &[u8],
    wanted: impl Fn(&[u8]) -> Option<(usize, Kind)>,
    got: &mut [Got],
    seen: &mut [bool],
    scratch: &mut Vec<u8>,
) -> Option<()> {
    let mut r = Reader { s: line, i: 0 };
    r.blank();
    r.expect(b'{')?;
    r.blank();
    if r.peek()? == b'}' {
        r.i += 1;
    } else {
        loop {
            r.expect(b'"')?;
            let (from, to, escaped) = r.string()?;
            if escaped {
                return None;
            }
            r.blank();
            r.expect(b':')?;
            r.blank();
            match wanted(&line[from..to]) {
                Some((slot, kind)) => {
                    if std::mem::replace(&mut seen[slot], true) {
                        return None;
                    }
                    r.wanted(kind, &mut got[slot], scratch)?;
                }
                // Strings and numbers, most unknown values, without the call.
                None => match r.peek()? {
                    b'"' => {
                        r.i += 1;
                        r.string()?;
                    }
                    b'-' | b'0'..=b'9' => {
                        r.number()?;
                    }
                    _ => r.skip(0)?,
                },
            }
            r.blank();
            match r.next()? {
                b',' => r.blank(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    r.blank();
    if r.i == line.len() {
        Some(())
    } else {
        None
    }
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    #[inline(always)]
    fn expect(&mut self, b: u8) -> Option<()> {
        if self.next()? == b {
            Some(())
        } else {
            None
        }
    }

    /// Spaces and tabs. A line break never is in a line; a carriage return
    /// makes `jsonlines` reject the line, so it is not white space here.
    #[inline(always)]
    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// A wanted key's value, written in place (a returned `Got` is copied
    /// through memory, a stall per key where it was measured).
    #[inline(always)]
    fn wanted(&mut self, kind: Kind, got: &mut Got, scratch: &mut Vec<u8>) -> Option<()> {
        match (self.peek()?, kind) {
            (b'n', _) => self.word(b"null"), // null reads as missing: `got` stays so
            (b'"', Kind::Str) => {
                self.i += 1;
                let (from, to, escaped) = self.string()?;
                *got = if escaped {
                    let start = scratch.len();
                    decode(&self.s[from..to], scratch)?;
                    Got::Str(Str { decoded: true, from: start, to: scratch.len() })
                } else {
                    Got::Str(Str { decoded: false, from, to })
                };
                Some(())
            }
            (b'-' | b'0'..=b'9', Kind::Int) => {
                let (negative, value, integer) = self.number()?;
                if !integer {
                    return None;
                }
                *got = Got::Int(if negative { -value } else { value });
                Some(())
            }
            _ => None,
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Any value, checked and passed over.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|_| ())
            }
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            open @ (b'[' | b'{') => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                let close = if open == b'[' { b']' } else { b'}' };
                self.blank();
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.expect(b'"')?;
                        self.string()?;
                        self.blank();
                        self.expect(b':')?;
                        self.blank();
                    }
                    self.skip(depth + 1)?;
                    self.blank();
                    match self.next()? {
                        b',' => self.blank(),
                        b if b == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// Where the run of digits from the cursor ends.
    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].wrapping_sub(b'0') < 10 {
            self.i += 1;
        }
        self.i - start
    }

    /// A number: its sign, the value of an integer, and whether it is one
    /// (no fraction, no exponent). Only numbers both readers hold exactly.
    #[inline(always)]
    fn number(&mut self) -> Option<(bool, i64, bool)> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let digits = self.digits();
        if digits == 0 || digits > MAX_DIGITS || (digits > 1 && self.s[start] == b'0') {
            return None;
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let count = self.digits();
            if count == 0 || digits + count > MAX_DIGITS {
                return None;
            }
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !(1..=2).contains(&self.digits()) {
                return None;
            }
            integer = false;
        }
        let value = self.s[start..start + digits].iter().fold(0i64, |n, &b| n * 10 + i64::from(b - b'0'));
        Some((negative, value, integer))
    }

    /// A string after its opening quote, through its closing one: the span
    /// of its content and whether it holds an escape. Checks every escape
    /// (surrogates paired), the UTF-8, and that no control byte is raw.
    #[inline(always)]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let from = self.i;
        let mut escaped = false;
        loop {
            self.i += special(&self.s[self.i..]);
            let byte = self.next()?;
            if byte == b'"' {
                return Some((from, self.i - 1, escaped));
            }
            escaped |= self.rare(byte)?;
        }
    }

    /// An escape (true) or a non-ASCII character (false) at `byte`, just
    /// read; None for a control byte or anything invalid. Kept out of the
    /// string loop: most strings hold neither.
    #[cold]
    #[inline(never)]
    fn rare(&mut self, byte: u8) -> Option<bool> {
        match byte {
            b'\\' => {
                match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let unit = self.hex4()?;
                        if (0xDC00..0xE000).contains(&unit) {
                            return None;
                        }
                        if (0xD800..0xDC00).contains(&unit) {
                            self.word(b"\\u")?;
                            if !(0xDC00..0xE000).contains(&self.hex4()?) {
                                return None;
                            }
                        }
                    }
                    _ => return None,
                }
                Some(true)
            }
            b if b < 0x20 => None,
            lead => {
                let size = match lead {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => return None,
                };
                let sequence = self.s.get(self.i - 1..self.i - 1 + size)?;
                std::str::from_utf8(sequence).ok()?;
                self.i += size - 1;
                Some(false)
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        let mut unit = 0;
        for &d in digits {
            unit = unit * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(unit)
    }
}

/// How many bytes of `text` come before the first that ends a plain run of
/// a string: a quote, a backslash, a control byte or a non-ASCII byte.
#[inline(always)]
fn special(text: &[u8]) -> usize {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of x86_64; each load reads text[at..at + 16], in bounds.
        unsafe {
            let (quote, backslash, space) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x20));
            while at + 16 <= text.len() {
                let block = _mm_loadu_si128(text.as_ptr().add(at) as *const __m128i);
                // Signed: bytes from 0x80 are negative, so "less than 0x20" takes them with the controls.
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(block, quote), _mm_cmpeq_epi8(block, backslash)),
                    _mm_cmplt_epi8(block, space),
                );
                let mask = _mm_movemask_epi8(hits) as u32;
                if mask != 0 {
                    return at + mask.trailing_zeros() as usize;
                }
                at += 16;
            }
        }
    }
    at + text[at..].iter().position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b)).unwrap_or(text.len() - at)
}

/// The text of a string `Reader::string` checked, escapes decoded, appended to `out`.
fn decode(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            let run = raw[i..].iter().position(|&b| b == b'\\').unwrap_or(raw.len() - i);
            out.extend_from_slice(&raw[i..i + run]);
            i += run;
            continue;
        }
        let escape = *raw.get(i + 1)?;
        i += 2;
        let byte = match escape {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = hex(raw.get(i..i + 4)?)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    let low = hex(raw.get(i + 2..i + 6)?)?;
                    i += 6;
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                let mut buffer = [0u8; 4];
                out.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut buffer).as_bytes());
                continue;
            }
            other => other, // '"', '\\', '/'
        };
        out.push(byte);
    }
    Some(())
}

fn hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |unit, &d| Some(unit * 16 + char::from(d).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Option<(Vec<Option<String>>, Option<i64>)> {
        let wanted = |key: &[u8]| match key {
            b"s" => Some((0, Kind::Str)),
            b"t" => Some((1, Kind::Str)),
            b"a" => Some((2, Kind::Int)),
            _ => None,
        };
        let (mut got, mut seen, mut scratch) = ([Got::Missing; 3], [false; 3], Vec::new());
        read_object(line.as_bytes(), wanted, &mut got, &mut seen, &mut scratch)?;
        let text = |g: &Got| match g {
            Got::Str(s) => Some(String::from_utf8(s.bytes(line.as_bytes(), &scratch).to_vec()).unwrap()),
            _ => None,
        };
        let number = match got[2] {
            Got::Int(n) => Some(n),
            _ => None,
        };
        Some((vec![text(&got[0]), text(&got[1])], number))
    }

    #[test]
    fn reads_what_pyarrow_reads() {
        let (texts, number) = read(r#" {"s" : "a\"b\\\/\u00e9\ud83d\ude00", "x": [1, {"y": [true, false, null, -0.5e-3]}], "a": -12, "t": "é"}	"#).unwrap();
        assert_eq!(texts, vec![Some("a\"b\\/é😀".to_string()), Some("é".to_string())]);
        assert_eq!(number, Some(-12));
        assert_eq!(read(r#"{"x":1,"x":2,"s":null}"#).unwrap().0, vec![None, None]);
        assert!(read("{}").is_some());
    }

    #[test]
    fn gives_up_on_anything_in_doubt() {
        for line in [
            r#"{"s":"a","s":"b"}"#, r#"{"a":null,"a":null}"#, r#"{"\u0073":"x"}"#, r#"{"s":"\ud800"}"#,
            r#"{"x":"\udc00"}"#, r#"{"s":"\ud800\u0041"}"#, r#"{"s":5}"#, r#"{"a":"5"}"#, r#"{"a":1.0}"#,
            r#"{"a":1e2}"#, r#"{"a":1234567890123456789}"#, r#"{"x":NaN}"#, r#"{"x":01}"#, r#"{"x":1.}"#,
            r#"{"x":1e999}"#, r#"{"x":[1,]}"#, r#"{"s":"a"} x"#, r#"{"s":"a"}{}"#, "{\"s\":\"\t\"}",
            "{\"s\":\"a\"}\r", "\u{a0}{}", r#"{"x":"\x"}"#, r#"{"s":"a",}"#, "{\"x\":\"\u{7f}\",", r#"[1]"#,
        ] {
            assert!(read(line).is_none(), "{line}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(read(&deep).is_none());
        let fits = format!("{{\"x\":{}{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(read(&fits).is_some());
        // Invalid UTF-8, in a wanted and in an unknown value: a stray byte, an encoded surrogate.
        let (mut got, mut scratch) = ([Got::Missing; 1], Vec::new());
        for bad in [&b"{\"s\":\"a\xff\"}"[..], b"{\"x\":\"\xed\xa0\x80\"}", b"{\"x\":\"\xc0\xaf\"}"] {
            let wanted = |key: &[u8]| if key == b"s" { Some((0, Kind::Str)) } else { None };
            assert!(read_object(bad, wanted, &mut got, &mut [false; 1], &mut scratch).is_none());
        }
        let mut bad = Vec::from(&b"{\"s\":\"a\xff\"}"[..]);
        bad[7] = b'b';
        assert!(read_object(&bad, |_| Some((0, Kind::Str)), &mut got, &mut [false; 1], &mut scratch).is_some());
    }
}
