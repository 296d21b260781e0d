//! `GrePacket`: a view over a GRE header (RFC 2784, key and sequence number from RFC 2890),
//! and `GreRepr`, its validated meaning.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S|  Reserved0      | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (optional)      |       Reserved1 (optional)    |  if C
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (optional)                        |  if K
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sequence Number (optional)                    |  if S
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Once [`GrePacket::check_len`] has passed, no accessor can index out of bounds. Untrusted
//! input goes through [`GrePacket::new_checked`]; frames being built use `new_unchecked`.

use crate::be::{u16_at, u32_at};
use crate::checksum;

mod field {
    use core::ops::Range;
    pub const FLAGS_VER: Range<usize> = 0..2;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const FIXED_LEN: usize = PROTOCOL.end;
    /// Each optional field is one 32-bit word, present in the order C, K, S (RFC 2890 §2):
    /// a field's offset is FIXED_LEN plus one word per present field before it.
    pub const OPTION_LEN: usize = 4;
    /// Within the checksum word: the checksum, then Reserved1.
    pub const CHECKSUM: Range<usize> = FIXED_LEN..FIXED_LEN + 2;
}

/// Checksum present (RFC 2784).
pub const FLAG_C: u16 = 0x8000;
/// Routing present (RFC 1701; RFC 2784 receivers drop it, as Linux does).
pub const FLAG_R: u16 = 0x4000;
/// Key present (RFC 2890).
pub const FLAG_K: u16 = 0x2000;
/// Sequence number present (RFC 2890).
pub const FLAG_S: u16 = 0x1000;
/// Acknowledgment present (enhanced GRE, version 1, RFC 2637).
pub const FLAG_A: u16 = 0x0080;
/// Reserved0 bits 4 and 5 (RFC 1701's strict source route and the top recursion bit): with
/// routing (bit 1) the bits RFC 2784 §2.3 says a receiver MUST discard a packet for. Bits
/// 6-12 are reserved for future use and MUST be ignored on receipt (as Linux does).
const RESERVED0: u16 = 0x0c00;
const VERSION_MASK: u16 = 0x0007;

/// GRE protocol type of IPv4 (EtherType).
pub const PROTO_IPV4: u16 = 0x0800;
/// GRE protocol type of IPv6.
pub const PROTO_IPV6: u16 = 0x86dd;
/// Transparent Ethernet bridging (what Open vSwitch sends by default).
pub const PROTO_TEB: u16 = 0x6558;

/// Why bytes are not a GRE header transitd accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GreError {
    /// Shorter than the header its flags announce.
    #[error("truncated GRE header")]
    Truncated,
    /// Version other than 0 (version 1 is PPTP's enhanced GRE).
    #[error("GRE version {0} is not ours")]
    Version(u8),
    /// Routing present, or reserved bit 4 or 5 set (RFC 2784 §2.3: discard).
    #[error("GRE header with routing or reserved bits 4-5 set")]
    Reserved,
    /// The checksum does not verify.
    #[error("bad GRE checksum")]
    BadChecksum,
}

/// A read/write view over a GRE header and its payload.
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps `buf` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buf: T) -> Self {
        GrePacket { buf }
    }

    /// Wraps `buf` after [`check_len`](Self::check_len).
    pub fn new_checked(buf: T) -> Result<Self, GreError> {
        let p = Self::new_unchecked(buf);
        p.check_len()?;
        Ok(p)
    }

    /// Once this returns Ok, no accessor below can index out of bounds.
    pub fn check_len(&self) -> Result<(), GreError> {
        let len = self.buf.as_ref().len();
        // Short-circuit: header_len() reads the flags, which need FIXED_LEN bytes.
        if len < field::FIXED_LEN || len < self.header_len() {
            return Err(GreError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The version and protocol type, read from the fixed header alone (as the XDP program
    /// reads them to judge whose GRE it is), if the buffer holds that header.
    pub fn fixed_header(&self) -> Option<(u8, u16)> {
        (self.buf.as_ref().len() >= field::FIXED_LEN).then(|| (self.version(), self.protocol()))
    }

    /// The flags-and-version word.
    pub fn flags_version(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::FLAGS_VER)
    }

    /// The version number (0 for RFC 2784, 1 for PPTP's enhanced GRE).
    pub fn version(&self) -> u8 {
        (self.flags_version() & VERSION_MASK) as u8
    }

    /// The payload's protocol type (an EtherType).
    pub fn protocol(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::PROTOCOL)
    }

    fn has(&self, flag: u16) -> bool {
        self.flags_version() & flag != 0
    }

    /// Header length the flags announce: 4, plus 4 for each of C, K, S (and A in version 1).
    pub fn header_len(&self) -> usize {
        let present = [FLAG_C, FLAG_K, FLAG_S].into_iter().filter(|&f| self.has(f)).count();
        let acknowledgment = self.version() == 1 && self.has(FLAG_A);
        field::FIXED_LEN + field::OPTION_LEN * (present + usize::from(acknowledgment))
    }

    /// Offset of the optional field `flag` (C, K or S) announces: one word for each present
    /// field before it.
    fn option_at(&self, flag: u16) -> usize {
        let before = [FLAG_C, FLAG_K, FLAG_S].into_iter().filter(|&f| f > flag && self.has(f)).count();
        field::FIXED_LEN + field::OPTION_LEN * before
    }

    fn word_at(&self, offset: usize) -> u32 {
        u32_at(self.buf.as_ref(), offset..offset + 4)
    }

    /// The checksum field, if present.
    pub fn checksum(&self) -> Option<u16> {
        self.has(FLAG_C).then(|| (self.word_at(self.option_at(FLAG_C)) >> 16) as u16)
    }

    /// The key, if present (RFC 2890 §2.1).
    #[inline]
    pub fn key(&self) -> Option<u32> {
        self.has(FLAG_K).then(|| self.word_at(self.option_at(FLAG_K)))
    }

    /// The sequence number, if present (RFC 2890 §2.2).
    pub fn sequence_number(&self) -> Option<u32> {
        self.has(FLAG_S).then(|| self.word_at(self.option_at(FLAG_S)))
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }

    /// True when there is no checksum, or the checksum over header and payload verifies.
    pub fn verify_checksum(&self) -> bool {
        !self.has(FLAG_C) || checksum::sum(self.buf.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Writes the flags-and-version word.
    pub fn set_flags_version(&mut self, value: u16) {
        self.buf.as_mut()[field::FLAGS_VER].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the protocol type.
    pub fn set_protocol(&mut self, value: u16) {
        self.buf.as_mut()[field::PROTOCOL].copy_from_slice(&value.to_be_bytes());
    }

    fn set_word_at(&mut self, offset: usize, value: u32) {
        self.buf.as_mut()[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the key; the K flag must be set first.
    pub fn set_key(&mut self, key: u32) {
        self.set_word_at(self.option_at(FLAG_K), key);
    }

    /// Writes the sequence number; the S flag must be set first.
    pub fn set_sequence_number(&mut self, seq: u32) {
        self.set_word_at(self.option_at(FLAG_S), seq);
    }

    /// Computes and writes the checksum over header and payload (C flag set first).
    pub fn fill_checksum(&mut self) {
        // Checksum field and Reserved1 both zero while summing (RFC 2784 §2.5).
        self.set_word_at(field::CHECKSUM.start, 0);
        let c = checksum::checksum(self.buf.as_ref());
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// The meaning of a version-0 GRE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreRepr {
    /// Payload protocol type (EtherType).
    pub protocol: u16,
    /// Whether a checksum is (to be) present.
    pub checksum: bool,
    /// The key, if any.
    pub key: Option<u32>,
    /// The sequence number, if any.
    pub sequence_number: Option<u32>,
}

impl GreRepr {
    /// Validates a header: version 0, no routing, reserved bits zero, checksum good.
    pub fn parse<T: AsRef<[u8]>>(packet: &GrePacket<T>) -> Result<GreRepr, GreError> {
        packet.check_len()?;
        let version = packet.version();
        if version != 0 {
            return Err(GreError::Version(version));
        }
        if packet.flags_version() & (FLAG_R | RESERVED0) != 0 {
            return Err(GreError::Reserved);
        }
        if !packet.verify_checksum() {
            return Err(GreError::BadChecksum);
        }
        Ok(GreRepr {
            protocol: packet.protocol(),
            checksum: packet.checksum().is_some(),
            key: packet.key(),
            sequence_number: packet.sequence_number(),
        })
    }

    /// Length of the header this describes.
    pub const fn header_len(&self) -> usize {
        let options = self.checksum as usize + self.key.is_some() as usize + self.sequence_number.is_some() as usize;
        field::FIXED_LEN + field::OPTION_LEN * options
    }

    /// The flags-and-version word for this header.
    pub const fn flags_version(&self) -> u16 {
        (if self.checksum { FLAG_C } else { 0 })
            | (if self.key.is_some() { FLAG_K } else { 0 })
            | (if self.sequence_number.is_some() { FLAG_S } else { 0 })
    }

    /// Writes the header into the front of `packet`, whose payload must already be in
    /// place when a checksum is wanted.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GrePacket<T>) {
        packet.set_flags_version(self.flags_version());
        packet.set_protocol(self.protocol);
        if self.checksum {
            packet.set_word_at(field::CHECKSUM.start, 0);
        }
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(seq) = self.sequence_number {
            packet.set_sequence_number(seq);
        }
        if self.checksum {
            packet.fill_checksum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // flags 0x2000 (K set, version 0), protocol 0x0800 (IPv4), key 42
    const KEYED: [u8; 8] = [0x20, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x2a];

    #[test]
    fn gre_with_key_reports_key() {
        let p = GrePacket::new_checked(&KEYED[..]).unwrap();
        assert_eq!(p.key(), Some(42));
        assert_eq!(p.sequence_number(), None);
        assert_eq!(p.header_len(), 8);
        assert_eq!(
            GreRepr::parse(&p),
            Ok(GreRepr { protocol: PROTO_IPV4, checksum: false, key: Some(42), sequence_number: None })
        );
    }

    #[test]
    fn all_options_in_rfc_order() {
        // C|K|S, protocol 0x86dd; checksum word; key 0x01020304; sequence 7; 2 payload bytes.
        let mut bytes = [0xb0, 0x00, 0x86, 0xdd, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 7, 0xab, 0xcd];
        let c = checksum::checksum(&bytes);
        bytes[4..6].copy_from_slice(&c.to_be_bytes());
        let p = GrePacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.key(), p.sequence_number(), p.header_len()), (Some(0x0102_0304), Some(7), 16));
        assert_eq!(p.payload(), &[0xab, 0xcd]);
        assert!(GreRepr::parse(&p).is_ok());
        bytes[17] ^= 1;
        assert_eq!(GreRepr::parse(&GrePacket::new_unchecked(&bytes[..])), Err(GreError::BadChecksum));
    }

    #[test]
    fn construct_into_junk_matches_literal_bytes() {
        let repr = GreRepr { protocol: PROTO_IPV4, checksum: false, key: Some(42), sequence_number: None };
        let mut buf = [0xa5u8; 8];
        repr.emit(&mut GrePacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, KEYED);
    }

    #[test]
    fn emitted_checksum_verifies() {
        let repr = GreRepr { protocol: PROTO_IPV6, checksum: true, key: Some(1), sequence_number: Some(2) };
        let mut buf = [0xa5u8; 16 + 5];
        repr.emit(&mut GrePacket::new_unchecked(&mut buf[..]));
        assert_eq!(GreRepr::parse(&GrePacket::new_unchecked(&buf[..])), Ok(repr));
    }

    #[test]
    fn truncated_and_foreign_headers_are_refused() {
        assert_eq!(GrePacket::new_checked(&KEYED[..7]).unwrap_err(), GreError::Truncated);
        assert_eq!(GrePacket::new_checked(&KEYED[..3]).unwrap_err(), GreError::Truncated);
        // PPTP enhanced GRE: flags K|S|A... version 1, protocol 0x880b (PPP).
        let pptp = [0x30, 0x81, 0x88, 0x0b, 0, 4, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(GreRepr::parse(&GrePacket::new_unchecked(&pptp[..])), Err(GreError::Version(1)));
        let routing = [0x40, 0x00, 0x08, 0x00, 0, 0, 0, 0];
        assert_eq!(GreRepr::parse(&GrePacket::new_unchecked(&routing[..])), Err(GreError::Reserved));
        let strict_source_route = [0x08, 0x00, 0x08, 0x00, 0, 0, 0, 0];
        assert_eq!(GreRepr::parse(&GrePacket::new_unchecked(&strict_source_route[..])), Err(GreError::Reserved));
        let recursion = [0x04, 0x00, 0x08, 0x00, 0, 0, 0, 0];
        assert_eq!(GreRepr::parse(&GrePacket::new_unchecked(&recursion[..])), Err(GreError::Reserved));
    }

    #[test]
    fn reserved_bits_6_to_12_are_ignored_on_receipt() {
        // RFC 2784 §2.3: "Bits 6-12 are reserved for future use. These bits MUST be sent
        // as zero and MUST be ignored on receipt."
        for bits in [0x0200u16, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010, 0x0008, 0x03f8] {
            let [hi, lo] = bits.to_be_bytes();
            let header = [hi, lo, 0x08, 0x00, 0x45, 0, 0, 20];
            let repr = GreRepr::parse(&GrePacket::new_unchecked(&header[..]));
            assert_eq!(repr.map(|r| (r.protocol, r.key)), Ok((PROTO_IPV4, None)), "bits {bits:#06x}");
        }
    }
}
