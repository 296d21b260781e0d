//! Forwarding's TTL and hop-limit decrement, with the IPv4 checksum updated incrementally.

use crate::checksum;
use crate::ip::IpPacket;

/// The packet's TTL or hop limit would reach zero: it must not be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TTL or hop limit expired")]
pub struct Expired;

/// Decrements the TTL (patching the IPv4 checksum, RFC 1624) or the hop limit; 0 or 1 is
/// [`Expired`] and left unchanged.
pub fn decrement<T: AsRef<[u8]> + AsMut<[u8]>>(ip: &mut IpPacket<T>) -> Result<(), Expired> {
    if ip.hop_limit() <= 1 {
        return Err(Expired);
    }
    match ip {
        IpPacket::V4(ip) => {
            let (ttl, protocol) = (ip.ttl(), ip.protocol());
            // TTL shares a 16-bit word with the protocol field.
            let old = u16::from_be_bytes([ttl, protocol]);
            let new = u16::from_be_bytes([ttl - 1, protocol]);
            ip.set_ttl(ttl - 1);
            ip.set_checksum(checksum::update(ip.checksum(), old, new));
        }
        IpPacket::V6(ip) => ip.set_hop_limit(ip.hop_limit() - 1),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        decrement(&mut IpPacket::new_checked(&mut h[..], false).unwrap()).unwrap();
        assert_eq!(h[8], 0x3f);
        assert_eq!(checksum::sum(&h), 0xffff);
        let mut expired = h;
        expired[8] = 1;
        assert_eq!(decrement(&mut IpPacket::new_checked(&mut expired[..], false).unwrap()), Err(Expired));
        assert_eq!(expired[8], 1);
    }

    #[test]
    fn hop_limit_decrement_stops_at_one() {
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[7] = 2;
        let mut ip = IpPacket::new_checked(&mut h[..], true).unwrap();
        assert_eq!(decrement(&mut ip), Ok(()));
        assert_eq!(decrement(&mut ip), Err(Expired));
        assert_eq!(h[7], 1);
    }
}
