//! IPv4 fragmentation (RFC 791 §3.2, RFC 815's offsets), for a datagram without DF that is
//! larger than the tunnel it must enter. The inner datagram is fragmented and each fragment
//! encapsulated on its own, so the customer's router forwards fragments it never has to
//! reassemble (RFC 4459 §3.1, as routers do by default).
//!
//! The first fragment is the received packet cut short in place; the others are written into
//! buffers of their own. Options whose copied flag is clear stay in the first fragment only.

use crate::ip::{IPV4_HEADER_LEN, Ipv4Options, Ipv4Packet};

/// Why a datagram cannot be fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// DF is set: the sender asked for an ICMP error instead.
    #[error("don't-fragment is set")]
    DontFragment,
    /// The MTU leaves no room for 8 bytes of data behind the header.
    #[error("MTU too small to carry a fragment")]
    MtuTooSmall,
    /// The header or its length field does not describe the bytes given.
    #[error("malformed IPv4 header")]
    Malformed,
}

/// How one datagram splits into fragments of at most `mtu` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Header length of the first fragment (the original header).
    header_len: usize,
    /// Header length of the other fragments (fixed header and copied options, padded).
    later_header_len: usize,
    /// Data bytes in the first fragment.
    first_data: usize,
    /// Data bytes in each later fragment (the last may carry fewer).
    later_data: usize,
    /// Data bytes of the whole datagram.
    data_len: usize,
    /// The datagram's own fragment offset in bytes (it may itself be a fragment).
    offset: usize,
    /// The datagram's own more-fragments flag, which only its last piece keeps.
    more: bool,
}

impl Plan {
    /// Plans the fragments of the IPv4 datagram `packet` (its header first, exactly
    /// `total length` bytes) so that each fits `mtu`.
    pub fn new(packet: &[u8], mtu: usize) -> Result<Plan, FragmentError> {
        let ip = Ipv4Packet::new_checked(packet).map_err(|_| FragmentError::Malformed)?;
        if ip.version() != 4 || usize::from(ip.total_len()) != packet.len() {
            return Err(FragmentError::Malformed);
        }
        if ip.dont_frag() {
            return Err(FragmentError::DontFragment);
        }
        let header_len = ip.header_len();
        // A piece whose data ends past byte 65,535 (the "ping of death") has no fragments with
        // valid offsets: the 13-bit field counts 8-byte units up to 65,528. Its datagram may
        // still pass RFC 791's 65,535 bytes by its first fragment's header (20 to 60 bytes):
        // only the reassembler, which holds that header, can tell.
        if usize::from(ip.frag_offset()) + packet.len() - header_len > usize::from(u16::MAX) {
            return Err(FragmentError::Malformed);
        }
        let later_header_len = IPV4_HEADER_LEN + copied_options(ip.options(), &mut [0u8; 40]);
        let first_data = mtu.saturating_sub(header_len) & !7;
        let later_data = mtu.saturating_sub(later_header_len) & !7;
        if first_data < 8 || later_data < 8 {
            return Err(FragmentError::MtuTooSmall);
        }
        Ok(Plan {
            header_len,
            later_header_len,
            first_data,
            later_data,
            data_len: packet.len() - header_len,
            offset: usize::from(ip.frag_offset()),
            more: ip.more_frags(),
        })
    }

    /// Number of fragments, the first included (1 if the datagram already fits).
    pub fn count(&self) -> usize {
        if self.data_len <= self.first_data {
            1
        } else {
            1 + (self.data_len - self.first_data).div_ceil(self.later_data)
        }
    }

    /// Largest fragment after the first: the buffer size [`Plan::write_later`] needs.
    pub fn later_len(&self) -> usize {
        self.later_header_len + self.later_data
    }

    /// Writes fragment `index` (1 ≤ index < count) of `packet` into `out`; returns its
    /// length, or `None` if the index is out of range or `out` is too short.
    pub fn write_later(&self, packet: &[u8], index: usize, out: &mut [u8]) -> Option<usize> {
        if index == 0 || index >= self.count() {
            return None;
        }
        let data_start = self.first_data + (index - 1) * self.later_data;
        let data = self.later_data.min(self.data_len - data_start);
        let len = self.later_header_len + data;
        let out = out.get_mut(..len)?;
        let (hdr, body) = out.split_at_mut(self.later_header_len);
        let original = Ipv4Packet::new_checked(packet).ok()?;
        hdr[..IPV4_HEADER_LEN].copy_from_slice(&packet[..IPV4_HEADER_LEN]);
        copied_options(original.options(), &mut hdr[IPV4_HEADER_LEN..]);
        let from = self.header_len + data_start;
        body.copy_from_slice(packet.get(from..from + data)?);
        let last = data_start + data == self.data_len;
        self.finish_header(hdr, len, data_start, !last || self.more);
        Some(len)
    }

    /// Cuts `packet` down to the first fragment in place (after the later ones were
    /// written); returns its length.
    pub fn shrink_to_first(&self, packet: &mut [u8]) -> usize {
        let data = self.first_data.min(self.data_len);
        let len = self.header_len + data;
        let more = data < self.data_len || self.more;
        self.finish_header(&mut packet[..self.header_len], len, 0, more);
        len
    }

    /// Sets the length, header length, offset and MF of a fragment's header and its
    /// checksum; the identification and the rest stay the original's.
    fn finish_header(&self, hdr: &mut [u8], total: usize, data_start: usize, more: bool) {
        let header_len = hdr.len();
        let mut ip = Ipv4Packet::new_unchecked(hdr);
        ip.set_header_len(header_len);
        ip.set_total_len(total as u16);
        ip.set_flags_and_offset(false, more, (self.offset + data_start) as u16);
        ip.fill_checksum();
    }
}

/// Copies the options whose copied flag is set from `options` into `out`, padded with
/// end-of-list to a multiple of four; returns the padded length. Options were checked
/// well-formed by the parser; a malformed tail ends the copy.
fn copied_options(options: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    for option in Ipv4Options::new(options).map_while(Result::ok) {
        let len = option.bytes.len();
        if option.copied() && n + len <= out.len() {
            out[n..n + len].copy_from_slice(option.bytes);
            n += len;
        }
    }
    let padded = n.next_multiple_of(4).min(out.len());
    out[n..padded].fill(0);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    /// An IPv4/UDP datagram of `len` bytes with options `opts`, data bytes numbered.
    fn datagram(len: usize, opts: &[u8], flags: u16) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut p = vec![0u8; len];
        p[0] = 0x40 | (hl / 4) as u8;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        p[8] = 63;
        p[9] = 17;
        p[12..20].copy_from_slice(&[10, 0, 0, 1, 203, 0, 113, 7]);
        p[20..hl].copy_from_slice(opts);
        for (i, b) in p[hl..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = checksum::checksum(&p[..hl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// Splits with the plan and returns every fragment.
    fn split(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let plan = Plan::new(p, mtu).unwrap();
        let mut out = Vec::new();
        for i in 1..plan.count() {
            let mut buf = vec![0u8; plan.later_len()];
            let n = plan.write_later(p, i, &mut buf).unwrap();
            buf.truncate(n);
            out.push(buf);
        }
        let mut first = p.to_vec();
        let n = plan.shrink_to_first(&mut first);
        first.truncate(n);
        out.insert(0, first);
        out
    }

    #[test]
    fn splits_at_eight_byte_boundaries_with_literal_headers() {
        let p = datagram(1500, &[], 0);
        let frags = split(&p, 1476);
        assert_eq!(frags.iter().map(Vec::len).collect::<Vec<_>>(), [1476, 44]);
        // First: 1456 data bytes (182 units), MF; second: offset 182, no MF.
        assert_eq!(&frags[0][2..8], &[0x05, 0xc4, 0xbe, 0xef, 0x20, 0x00]);
        assert_eq!(&frags[1][2..8], &[0x00, 0x2c, 0xbe, 0xef, 0x00, 182]);
        for f in &frags {
            assert_eq!(checksum::sum(&f[..20]), 0xffff);
        }
        let mut data: Vec<u8> = frags[0][20..].to_vec();
        data.extend(&frags[1][20..]);
        assert_eq!(data, p[20..].to_vec(), "the data reassembles");
    }

    #[test]
    fn later_fragments_carry_only_copied_options() {
        // Record route (7, not copied, 7 bytes) then NOP, then a copied option 0x94 (router
        // alert, 4 bytes): 12 option bytes.
        let opts = [7, 7, 4, 0, 0, 0, 0, 1, 0x94, 4, 0, 0];
        let p = datagram(600, &opts, 0);
        let frags = split(&p, 100);
        assert_eq!(frags[0][0], 0x48, "first keeps all options");
        for f in &frags[1..] {
            assert_eq!(f[0], 0x46, "later ones: router alert only");
            assert_eq!(&f[20..24], &[0x94, 4, 0, 0]);
            assert_eq!(checksum::sum(&f[..24]), 0xffff);
        }
        let data: Vec<u8> = frags.iter().flat_map(|f| f[usize::from(f[0] & 15) * 4..].to_vec()).collect();
        assert_eq!(data, p[32..].to_vec());
    }

    #[test]
    fn a_fragment_of_a_fragment_keeps_its_offset_and_more_flag() {
        let p = datagram(1000, &[], 0x2000 | 100); // offset 800 bytes, more follow
        let frags = split(&p, 500);
        let offsets: Vec<u16> = frags.iter().map(|f| u16::from_be_bytes([f[6], f[7]])).collect();
        assert_eq!(offsets, [0x2000 | 100, 0x2000 | 160, 0x2000 | 220]);
    }

    #[test]
    fn refuses_df_tiny_mtu_and_lying_lengths() {
        assert_eq!(Plan::new(&datagram(1500, &[], 0x4000), 1476), Err(FragmentError::DontFragment));
        assert_eq!(Plan::new(&datagram(1500, &[], 0), 27), Err(FragmentError::MtuTooSmall));
        let mut lying = datagram(100, &[], 0);
        lying[3] = 200;
        assert_eq!(Plan::new(&lying, 68), Err(FragmentError::Malformed));
        assert_eq!(Plan::new(&[], 68), Err(FragmentError::Malformed));
        assert_eq!(Plan::new(&datagram(100, &[], 0), 1476).unwrap().count(), 1);
    }

    #[test]
    fn refuses_a_piece_that_ends_past_the_largest_datagram() {
        // Offset 65,528 bytes and 1,480 data bytes: the "ping of death". Its later fragment's
        // offset would wrap to 181 units and read as a plausible overlap.
        assert_eq!(Plan::new(&datagram(1500, &[], 0x1fff), 1476), Err(FragmentError::Malformed));
        // Data ending exactly at byte 65,535 is taken: every offset fits the field. Its
        // datagram is not at RFC 791's largest size but past it, 65,555 bytes with a 20-byte
        // header (Total Length counts the header), for its reassembler to refuse. One byte
        // more is refused here.
        let last = datagram(20 + 7, &[], 0x1fff);
        assert_eq!(Plan::new(&last, 1476).map(|p| p.count()), Ok(1));
        assert_eq!(Plan::new(&datagram(20 + 8, &[], 0x1fff), 1476), Err(FragmentError::Malformed), "to 65,536");
    }

    proptest::proptest! {
        #[test]
        fn fragments_fit_and_reassemble(len in 28usize..4000, mtu in 68usize..1500) {
            let p = datagram(len, &[], 0);
            let frags = split(&p, mtu);
            let mut data: Vec<u8> = Vec::new();
            for (i, f) in frags.iter().enumerate() {
                proptest::prop_assert!(f.len() <= mtu);
                let off = usize::from(u16::from_be_bytes([f[6], f[7]]) & 0x1fff) * 8;
                proptest::prop_assert_eq!(off, data.len());
                let mf = f[6] & 0x20 != 0;
                proptest::prop_assert_eq!(mf, i + 1 < frags.len());
                data.extend(&f[20..]);
            }
            proptest::prop_assert_eq!(data, p[20..].to_vec());
        }
    }
}
