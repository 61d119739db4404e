//! Reading a line: byte searches and a cursor, shared by every scanner.

/// Byte searches over a whole line, 16 bytes at a step where SSE2 is there
/// (every x86_64), a byte at a time elsewhere. The loads stay inside the
/// slice: only whole 16-byte blocks are loaded, the tail goes byte by byte.
pub mod search {
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
pub struct Cursor<'a> {
    pub text: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    #[inline(always)]
    pub fn literal(&mut self, word: &[u8]) -> bool {
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
    pub fn looking_at(&self, word: &[u8]) -> bool {
        match self.text.get(self.pos..self.pos + word.len()) {
            Some(here) => here.iter().zip(word).all(|(a, b)| a == b),
            None => false,
        }
    }

    /// Bytes while `keep` holds; returns how many.
    #[inline(always)]
    pub fn run(&mut self, keep: impl Fn(u8) -> bool) -> usize {
        let rest = self.text.get(self.pos..).unwrap_or(&[]);
        // Iterating the slice (not indexing) leaves no bounds check in the loop.
        let count = rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len());
        self.pos += count;
        count
    }

    /// A run of bytes that are not white space nor `also`; returns its length.
    #[inline(always)]
    pub fn field(&mut self, also: u8) -> usize {
        let rest = self.text.get(self.pos..).unwrap_or(&[]);
        let count = search::field_end(rest, also);
        self.pos += count;
        count
    }

    pub fn digits(&mut self) -> usize {
        self.run(|b| b.is_ascii_digit())
    }

    /// Exactly `count` bytes satisfying `keep`.
    #[inline(always)]
    pub fn exactly(&mut self, count: usize, keep: impl Fn(u8) -> bool) -> bool {
        let end = self.pos + count;
        if end <= self.text.len() && self.text[self.pos..end].iter().all(|&b| keep(b)) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// `word` then one or more digits, or nothing consumed.
    pub fn keyed_digits(&mut self, word: &[u8]) -> bool {
        let start = self.pos;
        if self.literal(word) && self.digits() > 0 {
            return true;
        }
        self.pos = start;
        false
    }
}
