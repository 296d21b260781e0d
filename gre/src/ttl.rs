//! Forwarding's TTL and hop-limit decrement, with the IPv4 checksum updated incrementally.

use crate::checksum;

/// The packet's TTL or hop limit would reach zero: it must not be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TTL or hop limit expired")]
pub struct Expired;

/// Decrements the TTL of the IPv4 header at the front of `ip` (at least 20 bytes) and
/// patches its checksum (RFC 1624); a TTL of 0 or 1 is [`Expired`] and left unchanged.
pub fn decrement_ipv4_ttl(ip: &mut [u8; 20]) -> Result<(), Expired> {
    let ttl = ip[8];
    if ttl <= 1 {
        return Err(Expired);
    }
    // TTL shares a 16-bit word with the protocol field.
    let old = u16::from_be_bytes([ip[8], ip[9]]);
    let new = u16::from_be_bytes([ttl - 1, ip[9]]);
    ip[8] = ttl - 1;
    let check = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum::update(check, old, new).to_be_bytes());
    Ok(())
}

/// Decrements the hop limit of an IPv6 header (byte 7); 0 or 1 is [`Expired`].
pub fn decrement_ipv6_hop_limit(ip: &mut [u8; 40]) -> Result<(), Expired> {
    match ip[7] {
        0 | 1 => Err(Expired),
        h => {
            ip[7] = h - 1;
            Ok(())
        }
    }
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
        decrement_ipv4_ttl(&mut h).unwrap();
        assert_eq!(h[8], 0x3f);
        assert_eq!(checksum::sum(&h), 0xffff);
        let mut expired = h;
        expired[8] = 1;
        assert_eq!(decrement_ipv4_ttl(&mut expired), Err(Expired));
        assert_eq!(expired[8], 1);
    }
}
