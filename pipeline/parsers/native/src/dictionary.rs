//! Per-batch dictionaries: each field's distinct texts, and each line's index into them.

use std::collections::HashMap;

/// Slots of a dictionary's cache of recent values.
const CACHE_SLOTS: usize = 1024;

/// A dictionary being built: distinct byte strings in first-seen order.
pub struct Dictionary<'o> {
    plain: bool, // one entry per line, no lookup (see PLAIN)
    index: HashMap<Vec<u8>, i32>,
    offsets: &'o mut [i32],
    data: &'o mut [u8],
    pub count: usize,
    pub bytes: usize,
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
    pub fn new(offsets: &'o mut [i32], data: &'o mut [u8], plain: bool) -> Self {
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
    pub fn append(&mut self, key: &[u8], spell: Option<fn(&[u8], &mut Vec<u8>)>) -> Option<i32> {
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

    pub fn key_of(&self, code: i32) -> &[u8] {
        let (from, len) = self.key_spans[code as usize];
        &self.keys[from as usize..(from + len) as usize]
    }

    /// The index of `key`, stored as `key` itself or as what `spell` writes
    /// for it (never longer); None when the output buffers are full.
    pub fn code(&mut self, key: &[u8], spell: Option<fn(&[u8], &mut Vec<u8>)>) -> Option<i32> {
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
