//! TCP MSS clamping: a SYN's maximum-segment-size option lowered so that the segments it
//! invites fit through the tunnel without fragmentation (what routers call
//! `ip tcp adjust-mss`).
//!
//! Only an existing option is lowered; none is added (that would grow the packet), and a
//! SYN without one gets RFC 9293's default of 536 bytes (IPv4) or 1220 (IPv6), which fits.

use crate::checksum;
use crate::tcp::{SYN, TCP_HEADER_LEN, TcpPacket};

/// TCP option kinds.
const END: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;

/// Lowers the MSS option of the TCP SYN or SYN-ACK whose header starts `tcp` to `max`,
/// patching the checksum (RFC 1624). Returns the MSS it replaced, or `None` if the segment
/// is not a SYN or has no MSS option above `max`. Options are read up to the first
/// malformed one: an MSS before it is lowered, what follows it is left as it is (forwarding
/// malformed options is the endpoint's problem, not ours).
///
/// Every MSS option is lowered, not the first alone: a segment should carry one, but one
/// with two would have its receiver take the last (Linux's `tcp_parse_options` does) and
/// send segments too large for the tunnel. The largest value replaced is returned.
pub fn clamp_mss(tcp: &mut [u8], max: u16) -> Option<u16> {
    let segment = TcpPacket::new_checked(&*tcp).ok()?;
    if segment.flags() & SYN == 0 {
        return None;
    }
    let mut replaced = None;
    let mut from = 0;
    while let Some((at, old)) = mss_option(TcpPacket::new_unchecked(&*tcp).options(), from) {
        if old > max {
            write_patched(tcp, TCP_HEADER_LEN + at, max.to_be_bytes());
            replaced = replaced.max(Some(old));
        }
        from = at + 2;
    }
    replaced
}

/// Where in `options` the next MSS value at or after `from` sits (`from`: 0, or just past an
/// MSS option), and the value; `None` without one or when the options are malformed before it.
fn mss_option(options: &[u8], from: usize) -> Option<(usize, u16)> {
    let mut i = from;
    while i < options.len() {
        match options[i] {
            END => return None,
            NOP => i += 1,
            kind => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 || i + len > options.len() {
                    return None;
                }
                if kind == MSS && len == 4 {
                    return Some((i + 2, u16::from_be_bytes([options[i + 2], options[i + 3]])));
                }
                i += len;
            }
        }
    }
    None
}

/// Writes two bytes at `at` of a TCP segment and patches its checksum for each 16-bit word
/// they touch; an odd `at` straddles two words.
fn write_patched(tcp: &mut [u8], at: usize, bytes: [u8; 2]) {
    let word = |t: &[u8], w: usize| u16::from_be_bytes([t[w], t.get(w + 1).copied().unwrap_or(0)]);
    let first = at & !1;
    let last = (at + 1) & !1;
    let old = [word(tcp, first), word(tcp, last)];
    tcp[at..at + 2].copy_from_slice(&bytes);
    let mut check = TcpPacket::new_unchecked(&*tcp).checksum();
    check = checksum::update(check, old[0], word(tcp, first));
    if last != first {
        check = checksum::update(check, old[1], word(tcp, last));
    }
    TcpPacket::new_unchecked(tcp).set_checksum(check);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCP checksum of `seg` with a pseudo-header sum of zero (enough to compare).
    fn sum_ok(seg: &[u8]) -> bool {
        checksum::sum(seg) == 0xffff || checksum::sum(seg) == 0
    }

    fn syn(options: &[u8]) -> Vec<u8> {
        let len = 20 + options.len();
        let mut t = vec![0u8; len];
        t[0..4].copy_from_slice(&[0x04, 0xd2, 0x00, 0x50]);
        t[12] = ((len / 4) as u8) << 4;
        t[13] = SYN;
        t[20..].copy_from_slice(options);
        let c = checksum::checksum(&t);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    #[test]
    fn lowers_mss_at_even_and_odd_offsets() {
        // MSS first (value at offset 22), and after one NOP (value at offset 23).
        for opts in [&[2, 4, 0x05, 0xb4, 1, 1, 1, 0][..], &[1, 2, 4, 0x05, 0xb4, 1, 1, 0][..]] {
            let mut t = syn(opts);
            assert!(sum_ok(&t));
            assert_eq!(clamp_mss(&mut t, 1436), Some(1460));
            let at = 20 + opts.iter().position(|&b| b == 2).unwrap() + 2;
            assert_eq!(&t[at..at + 2], &1436u16.to_be_bytes());
            assert!(sum_ok(&t), "checksum still verifies");
        }
    }

    /// Two MSS options, the second the larger (which a Linux receiver would use): both end
    /// at most `max`, and the checksum verifies.
    #[test]
    fn lowers_every_mss_option() {
        // The options, the offsets of their two MSS values in the segment, and the values
        // those must hold after clamping to 1436.
        for (opts, at, after) in [
            (&[2, 4, 0x05, 0xb4, 2, 4, 0x23, 0x28][..], [22, 26], [1436, 1436]), // 1460, 9000
            (&[2, 4, 0x02, 0x18, 1, 2, 4, 0x23, 0x28, 1, 1, 0][..], [22, 27], [536, 1436]), // 536, 9000
        ] {
            let mut t = syn(opts);
            assert_eq!(clamp_mss(&mut t, 1436), Some(9000));
            let values = at.map(|a| u16::from_be_bytes([t[a], t[a + 1]]));
            assert_eq!(values, after);
            assert!(sum_ok(&t), "checksum still verifies");
        }
    }

    #[test]
    fn leaves_small_absent_and_malformed_options_alone() {
        let mut small = syn(&[2, 4, 0x05, 0x00]);
        assert_eq!(clamp_mss(&mut small, 1436), None);
        let mut none = syn(&[1, 1, 1, 0]);
        assert_eq!(clamp_mss(&mut none, 1436), None);
        let mut bad_len = syn(&[3, 9, 0, 0]); // window scale claiming 9 bytes
        let before = bad_len.clone();
        assert_eq!(clamp_mss(&mut bad_len, 1436), None);
        assert_eq!(bad_len, before);
        let mut ack = syn(&[2, 4, 0x05, 0xb4]);
        ack[13] = 0x10;
        assert_eq!(clamp_mss(&mut ack, 1436), None, "only SYNs carry an MSS");
        let mut cut = syn(&[2, 4, 0x05, 0xb4]);
        cut.truncate(22);
        assert_eq!(clamp_mss(&mut cut, 1436), None, "header longer than the bytes");
    }

    proptest::proptest! {
        #[test]
        fn checksum_stays_valid_for_any_option_layout(nops in 0usize..8, mss in 0u16.., max in 0u16.., tail in proptest::collection::vec(0u8..=255, 0..9)) {
            let mut opts = vec![NOP; nops];
            opts.extend([MSS, 4]);
            opts.extend(mss.to_be_bytes());
            while opts.len() % 4 != 0 { opts.push(NOP); }
            let mut t = syn(&opts);
            t.extend(&tail); // payload, odd lengths included
            let c = checksum::checksum(&{ let mut z = t.clone(); z[16] = 0; z[17] = 0; z });
            t[16..18].copy_from_slice(&c.to_be_bytes());
            let got = clamp_mss(&mut t, max);
            proptest::prop_assert_eq!(got, (mss > max).then_some(mss));
            proptest::prop_assert!(sum_ok(&t));
        }
    }
}
