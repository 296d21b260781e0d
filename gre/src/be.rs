//! Big-endian reads of a field's byte range, for the views' getters (the range comes from a
//! `field` module, and the view's `check_len` has made it safe to index).

use core::ops::Range;

/// The two bytes at `at`, as network order.
pub(crate) fn u16_at(b: &[u8], at: Range<usize>) -> u16 {
    u16::from_be_bytes([b[at.start], b[at.start + 1]])
}

/// The four bytes at `at`, as network order.
pub(crate) fn u32_at(b: &[u8], at: Range<usize>) -> u32 {
    u32::from_be_bytes([b[at.start], b[at.start + 1], b[at.start + 2], b[at.start + 3]])
}
