//! Cutting a chunk of a log file into an Arrow string column of lines, for
//! `producers.lines` (same library, so an install carries one artifact).
//!
//! Why native: numpy's newline search, pyarrow's UTF-8 validation, the trim
//! of line ends and the offset cast made four passes and three copies of
//! every chunk, ~0.7 µs a line; here it is one validation pass and one copy.
//! It only cuts the ordinary case: a chunk that is not valid UTF-8 or holds
//! a line longer than the limit is refused, and the Python path (which
//! replaces bad bytes and cuts long lines) does it instead.

use crate::search;

/// Why a chunk was not cut.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not the ordinary case: the Python path handles it.
    Unusual,
    /// The buffers do not fit the chunk: a bug in the caller.
    Buffers,
}

/// How many newlines `data` holds: the size of `cut`'s outputs.
pub fn count(data: &[u8]) -> usize {
    search::count(data, b'\n')
}

/// Each line of `data` (every line ends in '\n'), without its newline and
/// trailing '\r's, is appended to `values`; `value_offsets` gets the `n + 1`
/// Arrow offsets into `values` and `starts` each line's byte offset in the
/// file (`base` + its index in `data`). Returns the bytes written to `values`.
pub fn cut(
    data: &[u8],
    base: i64,
    max_line: usize,
    starts: &mut [i64],
    value_offsets: &mut [i32],
    values: &mut [u8],
) -> Result<usize, Refusal> {
    let n = starts.len();
    if value_offsets.len() != n + 1 || data.last().is_some_and(|&b| b != b'\n') || (n == 0) != data.is_empty() {
        return Err(Refusal::Buffers);
    }
    // Newline is ASCII, so the chunk is valid UTF-8 exactly when every line is.
    if std::str::from_utf8(data).is_err() {
        return Err(Refusal::Unusual);
    }
    let mut line = 0;
    let mut start = 0;
    let mut written = 0;
    value_offsets[0] = 0;
    while let Some(i) = search::first_of(&data[start..], b'\n', b'\n') {
        let end = start + i;
        if line >= n {
            return Err(Refusal::Buffers);
        }
        if end - start > max_line {
            return Err(Refusal::Unusual);
        }
        let mut stop = end;
        while stop > start && data[stop - 1] == b'\r' {
            stop -= 1;
        }
        let value = &data[start..stop];
        let to = written + value.len();
        values.get_mut(written..to).ok_or(Refusal::Buffers)?.copy_from_slice(value);
        written = to;
        starts[line] = base + start as i64;
        value_offsets[line + 1] = i32::try_from(written).map_err(|_| Refusal::Buffers)?;
        line += 1;
        start = end + 1;
    }
    if line != n {
        return Err(Refusal::Buffers);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8], max_line: usize) -> Result<(Vec<i64>, Vec<String>), Refusal> {
        let n = count(data);
        assert_eq!(n, data.iter().filter(|&&b| b == b'\n').count());
        let (mut starts, mut offsets, mut values) = (vec![0; n], vec![0; n + 1], vec![0; data.len()]);
        cut(data, 100, max_line, &mut starts, &mut offsets, &mut values)?;
        let lines = offsets
            .windows(2)
            .map(|w| String::from_utf8(values[w[0] as usize..w[1] as usize].to_vec()).unwrap())
            .collect();
        Ok((starts, lines))
    }

    #[test]
    fn lines_lose_newline_and_trailing_carriage_returns() {
        let data = b"first line of the chunk\r\n\nthird, after an empty one, long enough to span blocks\r\r\nx\r y\n";
        let (starts, lines) = run(data, 1000).unwrap();
        assert_eq!(lines, ["first line of the chunk", "", "third, after an empty one, long enough to span blocks", "x\r y"]);
        assert_eq!(starts, [100, 125, 126, 182]);
    }

    #[test]
    fn invalid_utf8_and_long_lines_are_left_to_python() {
        assert_eq!(run(b"ok\n\xff\n", 100), Err(Refusal::Unusual));
        assert_eq!(run(b"0123456789\n", 9), Err(Refusal::Unusual));
        assert!(run(b"0123456789\n", 10).is_ok());
    }

    #[test]
    fn buffers_that_do_not_fit_are_refused() {
        let (mut starts, mut offsets, mut values) = (vec![0; 1], vec![0; 2], vec![0; 1]);
        assert_eq!(cut(b"abc\n", 0, 100, &mut starts, &mut offsets, &mut values), Err(Refusal::Buffers));
        assert_eq!(cut(b"abc", 0, 100, &mut starts, &mut offsets, &mut [0; 8]), Err(Refusal::Buffers));
    }
}
