//! Explicit Congestion Notification across a tunnel's end (RFC 6040 §4.2): a congestion
//! mark a router on the tunnel's path put on the outer header reaches the inner packet when
//! it is decapsulated, or the mark is lost and the endpoints never slow down.
//!
//! The ECN field is the low two bits of IPv4's type-of-service byte and IPv6's traffic
//! class (RFC 3168 §5).

use crate::ip::IpPacket;
use crate::{Ipv4Packet, checksum};

/// Not ECN-capable transport.
pub const NOT_ECT: u8 = 0b00;
/// ECN-capable transport, codepoint 1.
pub const ECT1: u8 = 0b01;
/// ECN-capable transport, codepoint 0.
pub const ECT0: u8 = 0b10;
/// Congestion experienced.
pub const CE: u8 = 0b11;

/// The inner packet's ECN field after decapsulation, from the outer and inner ones (RFC 6040
/// §4.2, Figure 4); `None` when the packet must be dropped: congestion was marked on a packet
/// whose endpoints cannot be told of it (a router would have dropped it instead).
pub const fn decapsulated(outer: u8, inner: u8) -> Option<u8> {
    match (outer & CE, inner & CE) {
        (CE, NOT_ECT) => None,
        (CE, _) => Some(CE),
        (ECT1, ECT0) => Some(ECT1),
        (_, inner) => Some(inner),
    }
}

/// Writes `ecn` into the ECN field of `packet`, keeping the DSCP (and an IPv4 header's
/// checksum right, RFC 1624).
pub fn set<T: AsRef<[u8]> + AsMut<[u8]>>(packet: &mut IpPacket<T>, ecn: u8) {
    match packet {
        IpPacket::V4(p) => set_v4(p, ecn),
        IpPacket::V6(p) => {
            let class = p.traffic_class() & !CE | ecn & CE;
            let label = p.flow_label();
            p.set_version_class_flow(class, label);
        }
    }
}

fn set_v4<T: AsRef<[u8]> + AsMut<[u8]>>(p: &mut Ipv4Packet<T>, ecn: u8) {
    let (ver_ihl, old_tos) = (p.version() << 4 | (p.header_len() / 4) as u8, p.tos());
    let new_tos = old_tos & !CE | ecn & CE;
    let word = |tos: u8| u16::from_be_bytes([ver_ihl, tos]);
    let check = checksum::update(p.checksum(), word(old_tos), word(new_tos));
    p.set_tos(new_tos);
    p.set_checksum(check);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6040 §4.2, Figure 4, row by row (inner) and column by column (outer).
    #[test]
    fn the_decapsulation_table_is_rfc_6040s() {
        let drop = None;
        let table = [
            (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), drop]),
            (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
            (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
            (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NOT_ECT, ECT0, ECT1, CE].into_iter().zip(row) {
                assert_eq!(decapsulated(outer, inner), want, "outer {outer:02b}, inner {inner:02b}");
            }
        }
        // The DSCP bits around them do not matter.
        assert_eq!(decapsulated(0xb8 | CE, 0x28 | ECT0), Some(CE));
    }

    #[test]
    fn setting_ecn_keeps_the_dscp_and_the_checksum_right() {
        let mut v4 = [0x45, 0xb8 | ECT0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7];
        Ipv4Packet::new_unchecked(&mut v4[..]).fill_checksum();
        let mut p = IpPacket::new_checked(&mut v4[..], false).unwrap();
        set(&mut p, CE);
        assert_eq!(v4[1], 0xb8 | CE);
        assert_eq!(checksum::sum(&v4), 0xffff, "the header still verifies");
        let mut v6 = [0u8; 40];
        v6[..4].copy_from_slice(&(6u32 << 28 | u32::from(0xb8 | ECT1) << 20 | 0x12345).to_be_bytes());
        let mut p = IpPacket::new_checked(&mut v6[..], true).unwrap();
        set(&mut p, CE);
        let IpPacket::V6(p) = p else { unreachable!() };
        assert_eq!((p.traffic_class(), p.flow_label()), (0xb8 | CE, 0x12345));
    }
}
