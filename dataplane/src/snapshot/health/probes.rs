//! Probes as the health table sees them: the payload's layout (what a reply names before
//! it is verified), the tag each probe carries under the process's key in its tunnel's
//! life, and the replies that verify, which raise the tunnel's answer or its path MTU
//! probes'.

use std::sync::atomic::Ordering;

use super::{HealthTable, ProbeLife};
use crate::snapshot::TunnelId;

/// The first bytes of every probe's payload.
pub const PROBE_MAGIC: [u8; 8] = *b"transitd";
/// Payload: magic, tag (8), tunnel id (2), zero (2), sequence number (4), and the backbone
/// address of the server that sent it (4; zero outside a soft-unicast fleet), where the
/// server its reply reaches relays it. A path MTU probe's has its whole length (padding
/// included) where the zero is, and is padded with zeros; it names its sender too, and its
/// answer is relayed whole.
pub const PROBE_PAYLOAD_LEN: usize = 28;

/// What a path MTU probe's tag key differs from a health probe's by ("path_mtu"): a tag
/// made for one kind never verifies as the other's, whatever bytes the two hashed, so no
/// reply to a small health probe can pass for an answer to a large one.
const PATH_MTU_PROBE_KEY: u64 = 0x7061_7468_5f6d_7475;

/// The backbone address a probe's payload names, if it is a probe's and names one (the
/// tag is not checked: only the server that sent it can).
pub fn probe_sender(payload: &[u8]) -> Option<std::net::Ipv4Addr> {
    let p = payload.get(..PROBE_PAYLOAD_LEN)?;
    let addr = std::net::Ipv4Addr::new(p[24], p[25], p[26], p[27]);
    (p[..8] == PROBE_MAGIC && !addr.is_unspecified()).then_some(addr)
}

/// How long a probe's payload `payload` says the payload of a reply to it is (a reply is the
/// probe as it was sent): a health probe's [`PROBE_PAYLOAD_LEN`], a path MTU probe's the
/// length it was padded to (bytes 18..20, which its tag covers at the prober). `None` if too
/// short to say, or saying a length no probe has (a path MTU probe's is never shorter than
/// a health probe's). The tag is not checked: only the server that sent the probe can.
pub fn probe_reply_payload_len(payload: &[u8]) -> Option<usize> {
    let p = payload.get(..PROBE_PAYLOAD_LEN)?;
    match usize::from(u16::from_be_bytes([p[18], p[19]])) {
        0 => Some(PROBE_PAYLOAD_LEN),
        padded => (padded >= PROBE_PAYLOAD_LEN).then_some(padded),
    }
}

/// The tunnel a probe's payload names (bytes 16..18, as the prober's `write_probe` lays it
/// out), if it is long enough to name one.
pub fn probe_tunnel(payload: &[u8]) -> Option<TunnelId> {
    payload.get(16..18).map(|b| TunnelId::from_be_bytes([b[0], b[1]]))
}

/// What a probe reply that verifies answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    /// Health probe `seq` of life `life`.
    Probe { life: u32, seq: u32 },
    /// Path MTU probe `seq`, come back whole.
    PathMtuProbe { seq: u32 },
}

impl HealthTable {
    /// The key probe tags are made under.
    pub fn key(&self) -> [u64; 2] {
        [self.key[0].load(Ordering::Relaxed), self.key[1].load(Ordering::Relaxed)]
    }

    /// Sets the key (once, before the snapshot is used, or copied from the last one).
    pub fn set_key(&self, key: [u64; 2]) {
        self.key[0].store(key[0], Ordering::Relaxed);
        self.key[1].store(key[1], Ordering::Relaxed);
    }

    /// The tag of probe `seq` of tunnel `t`, named `name`: SipHash-2-4 under the key of the
    /// name's bytes, the tunnel's life unless it is 0, and the sequence number (all
    /// little-endian). By name, not id: ids move when a reload adds a tunnel in front, and a
    /// router must not hold tags that become another tunnel's. In the life: an earlier life
    /// of the tunnel used the same sequence numbers, and its tags must not answer this one's
    /// probes. Life 0 writes nothing (as tags were before lives: captures and their
    /// generators hold them); no other life meets it, since its last byte is 0 (a life is 32
    /// bits, written as 64 little-endian, as when lives were 64-bit), which no name holds.
    pub fn tag(&self, t: TunnelId, name: &str, seq: u32) -> u64 {
        self.tag_in(self.probe_life(usize::from(t)).life, name, seq, None)
    }

    /// The tag of path MTU probe `seq` of tunnel `t`, whose payload is `payload_len` bytes
    /// long: as [`HealthTable::tag`], under the key with [`PATH_MTU_PROBE_KEY`] in its first
    /// word, of the length too (little-endian), so that a reply verifies only with the
    /// length the probe was sent with.
    pub fn path_mtu_probe_tag(&self, t: TunnelId, name: &str, seq: u32, payload_len: u16) -> u64 {
        self.tag_in(self.probe_life(usize::from(t)).life, name, seq, Some(payload_len))
    }

    /// [`HealthTable::tag`] in life `life`, or [`HealthTable::path_mtu_probe_tag`] with a
    /// payload length.
    fn tag_in(&self, life: u32, name: &str, seq: u32, path_mtu_probe: Option<u16>) -> u64 {
        use std::hash::Hasher as _;
        let [k0, k1] = self.key();
        let k0 = if path_mtu_probe.is_some() { k0 ^ PATH_MTU_PROBE_KEY } else { k0 };
        let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
        h.write(name.as_bytes());
        if life != 0 {
            h.write(&u64::from(life).to_le_bytes());
        }
        h.write(&seq.to_le_bytes());
        if let Some(len) = path_mtu_probe {
            h.write(&len.to_le_bytes());
        }
        h.finish()
    }

    /// Highest sequence number answered on tunnel `t`.
    pub fn replied(&self, t: TunnelId) -> u32 {
        self.probe_life(usize::from(t)).replied
    }

    /// Whether tunnel `t`'s probe `seq` has been answered (a reply to a later one answers
    /// it too; one to an earlier one does not).
    pub fn answered(&self, t: TunnelId, seq: u32) -> bool {
        self.replied(t) >= seq
    }

    /// Whether tunnel `t`'s path MTU probe `seq` has been answered (or a later one).
    pub fn path_mtu_probe_answered(&self, t: TunnelId, seq: u32) -> bool {
        self.path_mtu_probes_answered.get(usize::from(t)).is_some_and(|a| a.load(Ordering::Acquire) >= seq)
    }

    /// Records a probe reply that arrived through tunnel `t`, named `name`, if its payload
    /// is one of ours for that tunnel in its present life (its tag verifies). Returns
    /// whether it was. A path MTU probe's reply answers it only whole: the padding that made
    /// the probe the size under test came back too.
    pub fn record_reply(&self, t: TunnelId, name: &str, payload: &[u8]) -> bool {
        match self.verify_reply(t, name, payload) {
            Some(Reply::Probe { life, seq }) => {
                self.raise_replied(t, life, seq);
                self.note_answer(t);
                true
            }
            Some(Reply::PathMtuProbe { seq }) => {
                // Release: the prober, reading it (Acquire), judges the probe by it.
                if let Some(answered) = self.path_mtu_probes_answered.get(usize::from(t)) {
                    answered.fetch_max(seq, Ordering::Release);
                }
                true
            }
            None => false,
        }
    }

    /// What a reply through tunnel `t`, named `name`, answers, if its tag verifies in the
    /// tunnel's present life.
    fn verify_reply(&self, t: TunnelId, name: &str, payload: &[u8]) -> Option<Reply> {
        // What the tag covers, up to the sequence number: the sender's address after it is
        // for relaying (and absent from probes transitd sent before it had one).
        let p = payload.get(..24)?;
        let word = |r: std::ops::Range<usize>| p[r].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        let seq = word(20..24) as u32;
        if p[..8] != PROBE_MAGIC || word(16..18) != u64::from(t) {
            return None;
        }
        // Read once, with the answers: the tag is checked in the life the answer is raised in.
        let life = self.lives.get(usize::from(t)).map(|l| ProbeLife::unpack(l.load(Ordering::Relaxed)).life)?;
        let padded_len = word(18..20) as u16;
        if padded_len != 0 {
            let whole = usize::from(padded_len) <= payload.len();
            let ours = whole && word(8..16) == self.tag_in(life, name, seq, Some(padded_len));
            return ours.then_some(Reply::PathMtuProbe { seq });
        }
        (word(8..16) == self.tag_in(life, name, seq, None)).then_some(Reply::Probe { life, seq })
    }

    /// Raises tunnel `t`'s highest answered sequence number to `seq` while it is still in
    /// life `life`, the one the reply verified in: a wrap since began another, whose numbers
    /// a reply of the last life must not answer.
    fn raise_replied(&self, t: TunnelId, life: u32, seq: u32) {
        if let Some(l) = self.lives.get(usize::from(t)) {
            let _ = l.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let now = ProbeLife::unpack(word);
                (now.life == life && now.replied < seq).then_some(ProbeLife { life, replied: seq }.pack())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::payload;
    use super::*;

    /// The tag on the wire, as lives of 64 bits wrote it: SipHash-2-4 of the name, the life
    /// as 8 bytes little-endian unless it is 0, and the sequence number. The values are the
    /// generator's (pcaps/generated/tunnel_edge.py's `siphash24`, key (1, 2), name
    /// acme-gre, sequence number 7): `siphash24(1, 2, b"acme-gre" + pack("<Q", life) +
    /// pack("<I", 7))`, without the `<Q` for life 0.
    #[test]
    fn tags_are_written_as_before_lives_were_packed() {
        let h = HealthTable::new(1);
        h.set_key([1, 2]);
        assert_eq!(h.tag_in(0, "acme-gre", 7, None), 0xd883_b726_c3b9_f715);
        assert_eq!(h.tag_in(5, "acme-gre", 7, None), 0xefe3_1363_29ea_f002);
        assert_eq!(h.tag_in(u32::MAX, "acme-gre", 7, None), 0xf51f_9c3d_c946_68d2);
        assert_eq!(h.tag(0, "acme-gre", 7), 0xd883_b726_c3b9_f715, "a first table's tunnel is in life 0");
    }

    /// What a probe's payload says its reply's is: a health probe's 28 bytes (zero in bytes
    /// 18..20), a path MTU probe's padded length there (1448: a probe of 1476 bytes less 28
    /// of IPv4 and ICMP headers); none for a length shorter than a health probe's, or from a
    /// payload too short to hold it.
    #[test]
    fn a_probes_payload_says_how_long_its_reply_is() {
        let mut p = [0u8; PROBE_PAYLOAD_LEN];
        p[..8].copy_from_slice(&PROBE_MAGIC);
        for (said, len) in [(0u16, Some(28)), (1448, Some(1448)), (28, Some(28)), (27, None), (1, None)] {
            p[18..20].copy_from_slice(&said.to_be_bytes());
            assert_eq!(probe_reply_payload_len(&p), len, "{said}");
        }
        assert_eq!(probe_reply_payload_len(&p[..PROBE_PAYLOAD_LEN - 1]), None);
    }

    /// A worker verifies a late reply to #4294967295 in the life before a wrap, and the
    /// prober begins the next life before the worker records it: the answer is not raised.
    /// With the life and the answer apart, the worker's write came after the prober's
    /// zeroing, and every number of the new life was answered.
    #[test]
    fn a_reply_verified_just_before_a_wrap_answers_nothing_after_it() {
        let h = HealthTable::new(1);
        h.set_key([1, 2]);
        let late = payload(&h, 0, "probed", u32::MAX);
        let Some(Reply::Probe { life, seq }) = h.verify_reply(0, "probed", &late) else { panic!("a probe reply") };
        h.restart(0); // between the worker's read of the life and its write
        h.raise_replied(0, life, seq);
        assert_eq!(h.replied(0), 0);
        assert!(!h.answered(0, 1));
        assert!(!h.record_reply(0, "probed", &late), "the last life's tag verifies no more");
        assert!(h.record_reply(0, "probed", &payload(&h, 0, "probed", 1)), "the new life's");
        assert!(h.answered(0, 1) && !h.answered(0, 2));
    }
}
