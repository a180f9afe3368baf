//! A one-pass scanner of flat JSON objects: whitespace, plain (escape-free)
//! strings found eight bytes at a time, scalars and numbers by JSON's
//! grammar, without building a tree or allocating. Anything it does not
//! take (escapes, nesting, invalid text) is left to serde_json by the
//! caller, which reads it or says why not.

/// Byte equality without a call for short field names (up to 16 bytes:
/// two overlapping compares).
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    }
    fn half(s: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    }
    let n = a.len();
    match n {
        _ if n != b.len() => false,
        0..=3 => a == b,
        4..=8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        9..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A JSON scalar found by [`scan_scalar`].
pub enum Scalar {
    Null,
    Bool(bool),
    /// An integer of at most 18 digits (exact in `i64`).
    Int(i64),
    /// Any other number, finite (serde_json rejects a record with a number
    /// out of `f64`'s range, needed or not, so the scanner hands those over).
    Float(f64),
    /// A string without escapes: the text between the quotes.
    Str,
}

#[inline]
pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The content range of the string opening at `i`; `None` if there is none
/// or it has escapes or control characters.
#[inline]
pub fn scan_plain_string(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = string_stop(b, i + 1)?;
    (b[end] == b'"').then_some((i + 1, end))
}

/// The index of the first `"`, `\` or control character at or after
/// `from`, eight bytes at a time.
#[inline]
fn string_stop(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // High bit of each byte below `n` (n <= 128). A borrow can only set
    // bits above a byte that truly matches, so the lowest set bit is exact.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * n as u64) & !w & HIGHS;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = below(w ^ (ONES * b'"' as u64), 1) | below(w ^ (ONES * b'\\' as u64), 1) | below(w, 0x20);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// The scalar at `i` and the index just past it; `None` for objects, arrays,
/// strings with escapes and anything that is not JSON.
#[inline]
pub fn scan_scalar(b: &[u8], i: usize) -> Option<(Scalar, usize)> {
    match *b.get(i)? {
        b'"' => scan_plain_string(b, i).map(|(_, end)| (Scalar::Str, end + 1)),
        b't' if b[i..].starts_with(b"true") => Some((Scalar::Bool(true), i + 4)),
        b'f' if b[i..].starts_with(b"false") => Some((Scalar::Bool(false), i + 5)),
        b'n' if b[i..].starts_with(b"null") => Some((Scalar::Null, i + 4)),
        b'-' | b'0'..=b'9' => scan_number(b, i),
        _ => None,
    }
}

/// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
#[inline]
pub fn scan_number(b: &[u8], i: usize) -> Option<(Scalar, usize)> {
    let digits = |mut j: usize| {
        while matches!(b.get(j), Some(b'0'..=b'9')) {
            j += 1;
        }
        j
    };
    let negative = b[i] == b'-';
    let int_start = i + negative as usize;
    // The integer part, read and accumulated in one pass (the value is
    // used only for at most 18 digits, where it cannot overflow).
    let mut int_end = int_start;
    let mut magnitude = 0i64;
    match b.get(int_start)? {
        b'0' => int_end += 1,
        b'1'..=b'9' => {
            while let Some(&d @ b'0'..=b'9') = b.get(int_end) {
                magnitude = magnitude.wrapping_mul(10).wrapping_add((d - b'0') as i64);
                int_end += 1;
            }
        }
        _ => return None,
    }
    let mut j = int_end;
    let mut integer = true;
    if b.get(j) == Some(&b'.') {
        let end = digits(j + 1);
        if end == j + 1 {
            return None;
        }
        (j, integer) = (end, false);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            return None;
        }
        (j, integer) = (end, false);
    }
    // serde_json reads `-0` as the float -0.0, whose bits (and so its
    // `count_distinct` hash) differ from 0's: leave it to the float path.
    let negative_zero = negative && int_end - int_start == 1 && b[int_start] == b'0';
    if integer && int_end - int_start <= 18 && !negative_zero {
        return Some((Scalar::Int(if negative { -magnitude } else { magnitude }), j));
    }
    // Valid JSON number text is valid Rust float text; both round correctly.
    let text = std::str::from_utf8(&b[i..j]).ok()?;
    let v: f64 = text.parse().ok()?;
    v.is_finite().then_some((Scalar::Float(v), j))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word compare of field names agrees with slice equality, for
        /// every length and for names that differ in a single byte.
        #[test]
        fn same_bytes_is_slice_equality(
            a in proptest::collection::vec(b'a'..=b'd', 0..20),
            flip in proptest::option::of((0usize..20, b'a'..=b'd')),
            extra in proptest::option::of(b'a'..=b'd'),
        ) {
            let mut b = a.clone();
            if let Some((at, byte)) = flip {
                if at < b.len() {
                    b[at] = byte;
                }
            }
            if let Some(byte) = extra {
                b.push(byte);
            }
            proptest::prop_assert_eq!(same_bytes(&a, &b), a == b);
        }
    }

    proptest::proptest! {
        /// The word-at-a-time search stops where a byte-by-byte one does,
        /// whatever the bytes around the stop and wherever it falls in a word.
        #[test]
        fn string_stop_finds_what_a_byte_loop_finds(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x22 ^ 0x80, 0x5c ^ 0x80, 0x7f, 0x80, 0x9f, 0xa0, 0xff]),
                    b'#'..=b'~',
                ],
                0..40,
            ),
            from in 0usize..42,
        ) {
            let byte_loop = bytes
                .get(from..)
                .and_then(|rest| rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20))
                .map(|p| from + p);
            proptest::prop_assert_eq!(string_stop(&bytes, from), byte_loop);
        }
    }
}
