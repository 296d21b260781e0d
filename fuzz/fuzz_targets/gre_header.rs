//! Any bytes as a GRE header: the view never reads out of bounds once `check_len` passed, and
//! a header that parses emits back to the same bytes (checksum included), but for Reserved0
//! bits 6-12, ignored on receipt and sent as zero (RFC 2784 §2.3).
#![no_main]

use gre::{GrePacket, GreRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = GrePacket::new_checked(data) else { return };
    let _ = (packet.key(), packet.sequence_number(), packet.checksum(), packet.payload());
    if let Ok(repr) = GreRepr::parse(&packet) {
        // The header's bytes start as none of the input's: emit must write every one (a key,
        // a sequence number or Reserved1 left unwritten shows as 0xa5).
        let mut out = data.to_vec();
        out[..repr.header_len()].fill(0xa5);
        repr.emit(&mut GrePacket::new_unchecked(&mut out[..]));
        // Reserved1 (bytes 6..8 with a checksum) is written as zero and the checksum made
        // anew (it must verify); the rest round-trips.
        let mut expect = data.to_vec();
        let flags = u16::from_be_bytes([expect[0], expect[1]]) & !0x03f8;
        expect[..2].copy_from_slice(&flags.to_be_bytes());
        if repr.checksum {
            expect[4..6].copy_from_slice(&out[4..6]);
            expect[6..8].fill(0);
            assert!(GrePacket::new_unchecked(&out[..]).verify_checksum());
        }
        assert_eq!(out, expect);
    }
});
