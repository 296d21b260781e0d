//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with zero), folded to 16 bits, not yet inverted.
///
/// Summed four bytes at a time: the one's-complement sum does not depend on the word size
/// it is carried in (RFC 1071 §2(B)), so 32-bit words added into a `u64` and folded at the
/// end give the 16-bit sum with half the additions and none of the shifts.
pub fn sum(data: &[u8]) -> u16 {
    // An IPv4 header without options, which the check of every IPv4 packet sums (twice for a
    // decapsulated one): five words added in a row, about half the instructions the loop
    // below takes for them (its setup, unrolled body, remainder loop and padding's tests).
    if let Ok(header) = <&[u8; 20]>::try_from(data) {
        let word = |i: usize| u64::from(u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]));
        return fold(word(0) + word(4) + word(8) + word(12) + word(16));
    }
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    // Up to three bytes left, at a word boundary: the last word, padded with zeros.
    let last = words.remainder().iter().zip([24, 16, 8]).fold(0u32, |w, (&b, at)| w | u32::from(b) << at);
    fold(acc + u64::from(last))
}

/// Folds a wide one's-complement accumulator to 16 bits.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for `data` (whose checksum field reads as zero).
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word changes from `old` to `new`.
pub fn update(check: u16, old: u16, new: u16) -> u16 {
    // HC' = ~(~HC + ~m + m')
    !fold(u64::from(!check) + u64::from(!old) + u64::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    }

    #[test]
    fn known_ipv4_header_checksums_to_b861() {
        // A textbook IPv4 header: 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(sum(&h), 0xffff, "a header with its checksum sums to all ones");
    }

    /// The sum as RFC 1071 defines it: 16-bit big-endian words, an odd last byte padded with
    /// zero, end-around carry.
    fn rfc_1071_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0));
            acc += word;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    proptest::proptest! {
        #[test]
        fn sum_equals_the_rfc_1071_definition(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            proptest::prop_assert_eq!(sum(&data), rfc_1071_sum(&data));
        }

        /// The 20-byte path (an IPv4 header without options), which random lengths above
        /// reach once in 200 cases; all-ones words carry the most.
        #[test]
        fn a_20_byte_sum_equals_the_rfc_1071_definition(
            data in proptest::collection::vec(
                proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(0xffu8)],
                20,
            ),
        ) {
            proptest::prop_assert_eq!(sum(&data), rfc_1071_sum(&data));
        }

        #[test]
        fn incremental_update_equals_recompute(mut data in proptest::collection::vec(proptest::num::u8::ANY, 20..60), at in 0usize..9, new in proptest::num::u16::ANY) {
            data[10] = 0;
            data[11] = 0;
            let word = if at == 5 { 6 } else { at }; // never the checksum word itself
            let c = checksum(&data);
            let old = u16::from_be_bytes([data[2 * word], data[2 * word + 1]]);
            data[2 * word..2 * word + 2].copy_from_slice(&new.to_be_bytes());
            let expect = checksum(&data);
            let got = update(c, old, new);
            // 0x0000 and 0xffff are the same one's-complement value; nothing else is (a
            // complement of the right answer, `got ^ expect == 0xffff`, is the classic bug
            // of a missing `!`, and must fail).
            proptest::prop_assert!(
                got == expect || matches!((got, expect), (0, 0xffff) | (0xffff, 0)),
                "{got:#x} vs {expect:#x}"
            );
        }
    }
}
