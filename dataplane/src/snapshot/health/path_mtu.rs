//! Path MTUs as the health table keeps them: the largest inner packet each tunnel's
//! underlay was found to take and until when, lowered by a Packet Too Big (at once or,
//! while errors about the tunnel are doubted, claimed for the prober to probe first),
//! raised back by an answered path MTU probe, and expired.

use std::sync::atomic::Ordering;

use super::HealthTable;
use crate::snapshot::TunnelId;

/// How long a path MTU learned from a Packet Too Big holds before the tunnel's configured
/// `mtu` is tried again: RFC 1191 §6.3's and RFC 8201 §4's ten minutes.
pub const PATH_MTU_HOLD_NS: u64 = 600_000_000_000;

/// A learned path MTU's expiry is kept in units of 2^30 ns (about a second), so that it and
/// the MTU fit one atomic word: times to the year 2116 as Unix nanoseconds (2^62 ns).
const TIME_SHIFT: u32 = 30;

/// The MTU a path MTU word holds a tunnel to at `now_ns`, if it still holds (0, none
/// learned, never does).
#[inline]
fn held(word: u64, now_ns: u64) -> Option<u32> {
    (word >> 32 > now_ns >> TIME_SHIFT).then_some(word as u32)
}

impl HealthTable {
    /// Whether any tunnel may hold a path MTU: false while none does.
    #[inline]
    pub fn any_path_mtu(&self) -> bool {
        self.any_path_mtu.load(Ordering::Relaxed)
    }

    /// The largest inner packet tunnel `t`'s underlay takes (its path MTU less the outer
    /// headers), as a Packet Too Big about it said, while that holds at `now_ns` (a frame's
    /// receive time); `None`: the configured `mtu` stands.
    #[inline]
    pub fn path_mtu(&self, t: TunnelId, now_ns: u64) -> Option<u32> {
        held(self.tunnels.get(usize::from(t))?.path_mtu.load(Ordering::Relaxed), now_ns)
    }

    /// Records that tunnel `t`'s underlay takes inner packets of at most `mtu` bytes, as a
    /// Packet Too Big received at `now_ns` says, for [`PATH_MTU_HOLD_NS`]: unless a lower
    /// one holds (a Packet Too Big never raises the estimate, RFC 1191 §6.3). The same or a
    /// lower one starts the hold again. Returns whether the MTU in force fell.
    ///
    /// A word is written only when it changes (the hold is kept in about-a-second units):
    /// the words share cache lines with the `up` flags every packet's route reads, and a
    /// flood of the same error must not bounce them between the workers' cores.
    pub fn lower_path_mtu(&self, t: TunnelId, mtu: u32, now_ns: u64) -> bool {
        let Some(h) = self.tunnels.get(usize::from(t)) else { return false };
        let until = now_ns.saturating_add(PATH_MTU_HOLD_NS) >> TIME_SHIFT;
        let new = until << 32 | u64::from(mtu);
        let mut lowered = false;
        // SeqCst here and in expire_path_mtus (rare, off the forwarding path): the word is
        // written before the flag, and a clearing that missed the word leaves the flag set.
        let _ = h.path_mtu.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
            let held = held(word, now_ns);
            lowered = held.is_none_or(|held| mtu < held);
            (word != new && held.is_none_or(|held| mtu <= held)).then_some(new)
        });
        // A worker that reads the flag before it is set takes the tunnel's `mtu` for a
        // packet or two, as before the error came.
        if !self.any_path_mtu.load(Ordering::SeqCst) {
            self.any_path_mtu.store(true, Ordering::SeqCst);
        }
        lowered
    }

    /// A Packet Too Big received at `now_ns` says tunnel `t`'s underlay takes inner packets
    /// of at most `mtu` bytes: lowered at once ([`HealthTable::lower_path_mtu`]), as a host
    /// lowers a route, unless an error about the tunnel was disproved within
    /// [`PATH_MTU_HOLD_NS`]: then it is only claimed (the lowest of the claims kept), and the
    /// prober believes it when a probe of the size in force goes unanswered (RFC 8899
    /// §4.6.2: a PTB not used directly). An attacker who forges errors without end so holds
    /// a tunnel lower for a probe's timeout once, not nine seconds in ten; a true error
    /// about a tunnel so doubted waits for that timeout. Returns whether the MTU in force fell.
    pub fn path_mtu_error(&self, t: TunnelId, mtu: u32, now_ns: u64) -> bool {
        let Some(doubt) = self.doubts.get(usize::from(t)) else { return false };
        if held(doubt.load(Ordering::Relaxed), now_ns).is_none() {
            return self.lower_path_mtu(t, mtu, now_ns);
        }
        // Written only when the claim falls: a flood of one error writes the word once.
        let claimed = doubt.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
            let claimed = word as u32;
            (claimed == 0 || mtu < claimed).then_some((word & !u64::from(u32::MAX)) | u64::from(mtu))
        });
        if claimed.is_ok() {
            self.note_path_mtu_claims();
        }
        false
    }

    /// Marks that some tunnel holds a claim for the prober to take up. Release: the prober,
    /// taking the mark (Acquire), sees the claim written before it.
    pub fn note_path_mtu_claims(&self) {
        self.any_claim.store(true, Ordering::Release);
    }

    /// Whether some tunnel may hold a claim not taken up since the last call (the mark is
    /// taken: a claim the prober cannot take up yet is marked again).
    pub fn take_path_mtu_claims(&self) -> bool {
        self.any_claim.load(Ordering::Relaxed) && self.any_claim.swap(false, Ordering::Acquire)
    }

    /// An error about tunnel `t` was disproved at `now_ns`: the next ones for
    /// [`PATH_MTU_HOLD_NS`] are probed before they are believed.
    pub fn doubt_path_mtu_errors(&self, t: TunnelId, now_ns: u64) {
        if let Some(doubt) = self.doubts.get(usize::from(t)) {
            let until = now_ns.saturating_add(PATH_MTU_HOLD_NS) >> TIME_SHIFT;
            let _ = doubt
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| Some(until << 32 | (word & 0xffff_ffff)));
        }
    }

    /// The lowest MTU inside that doubted errors about tunnel `t` claimed and the prober has
    /// not yet settled ([`HealthTable::settle_path_mtu_claim`]).
    pub fn path_mtu_claim(&self, t: TunnelId) -> Option<u32> {
        let word = self.doubts.get(usize::from(t))?.load(Ordering::Relaxed);
        Some(word as u32).filter(|&claimed| claimed != 0)
    }

    /// Settles tunnel `t`'s claim at `now_ns`: `believed` (its probe went unanswered, or
    /// none could be sent), the path MTU is lowered to it; else it is forgotten. Returns
    /// whether the MTU in force fell.
    pub fn settle_path_mtu_claim(&self, t: TunnelId, believed: bool, now_ns: u64) -> bool {
        let Some(doubt) = self.doubts.get(usize::from(t)) else { return false };
        let claimed = doubt.fetch_and(!u64::from(u32::MAX), Ordering::Relaxed) as u32;
        believed && claimed != 0 && self.lower_path_mtu(t, claimed, now_ns)
    }

    /// A path MTU probe of `mtu` bytes inside was answered: the underlay carries that much
    /// (RFC 8899 §4.1), and the errors that took tunnel `t` lower were false. Raises the
    /// path MTU held at `now_ns` back to `mtu` for the rest of its hold, or (`None`: the
    /// probe was of the tunnel's own `mtu`) forgets it. Returns whether one held lower.
    pub fn raise_path_mtu(&self, t: TunnelId, mtu: Option<u32>, now_ns: u64) -> bool {
        let Some(h) = self.tunnels.get(usize::from(t)) else { return false };
        // SeqCst as in lower_path_mtu: an error a worker records meanwhile is either
        // overwritten here (the answer came after it) or written after, and stands.
        h.path_mtu
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                let held = held(word, now_ns)?;
                match mtu {
                    None => Some(0),
                    Some(mtu) => (held < mtu).then_some((word & !u64::from(u32::MAX)) | u64::from(mtu)),
                }
            })
            .is_ok()
    }

    /// Zeroes the path MTUs that no longer hold at `now_ns` and clears the flag when none
    /// holds, so that the forwarding path goes back to reading the flag alone. The prober
    /// calls it about once a second (the frames' clock). While any holds the flag is left
    /// set (a worker reading it clear would take a tunnel's `mtu` for its packet). To clear
    /// it, the words are read again after the clearing: a worker recording one meanwhile
    /// either sets the flag after its word, or its word is seen here and the flag set back.
    pub fn expire_path_mtus(&self, now_ns: u64) {
        if !self.any_path_mtu.load(Ordering::SeqCst) {
            return;
        }
        let any_held = |expire: bool| {
            let mut any = false;
            for h in self.tunnels.iter() {
                let word = h.path_mtu.load(Ordering::SeqCst);
                if held(word, now_ns).is_some() {
                    any = true;
                } else if word != 0 && expire {
                    let _ = h.path_mtu.compare_exchange(word, 0, Ordering::SeqCst, Ordering::SeqCst);
                }
            }
            any
        };
        if any_held(true) {
            return;
        }
        self.any_path_mtu.store(false, Ordering::SeqCst);
        if any_held(false) {
            self.any_path_mtu.store(true, Ordering::SeqCst);
        }
    }

    /// Every tunnel's path MTU word (MTU and hold), to be put back with
    /// [`HealthTable::set_path_mtus`]: a differential test runs two pipelines over the same
    /// frames from the same learned state.
    pub fn path_mtus(&self) -> Vec<u64> {
        self.tunnels.iter().map(|h| h.path_mtu.load(Ordering::SeqCst)).collect()
    }

    /// Puts back words [`HealthTable::path_mtus`] took (the flag set if any is).
    pub fn set_path_mtus(&self, words: &[u64]) {
        for (h, &word) in self.tunnels.iter().zip(words) {
            h.path_mtu.store(word, Ordering::SeqCst);
        }
        self.any_path_mtu.store(words.iter().any(|&w| w != 0), Ordering::SeqCst);
    }

    /// Forgets every learned path MTU (path MTU discovery was turned off), and the claims
    /// and doubts of errors: a claim the prober believed later would lower a tunnel that
    /// discovery no longer lowers.
    pub fn forget_path_mtus(&self) {
        for h in self.tunnels.iter() {
            h.path_mtu.store(0, Ordering::SeqCst);
        }
        self.any_path_mtu.store(false, Ordering::SeqCst);
        for doubt in self.doubts.iter() {
            doubt.store(0, Ordering::Relaxed);
        }
    }

    /// Forgets what tunnel `t`'s underlay was found to take (its path or its headers
    /// changed), and what errors about the old path claimed or earned it (a doubt).
    pub fn forget_path_mtu(&self, t: TunnelId) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            h.path_mtu.store(0, Ordering::Relaxed);
        }
        if let Some(doubt) = self.doubts.get(usize::from(t)) {
            doubt.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::S;
    use super::*;

    #[test]
    fn a_path_mtu_holds_ten_minutes_falls_and_is_never_raised_by_an_error() {
        let h = HealthTable::new(2);
        assert_eq!(h.path_mtu(0, 5 * S), None);
        assert!(h.lower_path_mtu(0, 1400, 5 * S));
        assert_eq!((h.path_mtu(0, 6 * S), h.path_mtu(1, 6 * S)), (Some(1400), None), "one tunnel's");
        assert!(!h.lower_path_mtu(0, 1450, 7 * S), "an error never raises it");
        assert_eq!(h.path_mtu(0, 7 * S), Some(1400));
        assert!(h.lower_path_mtu(0, 1300, 8 * S));
        assert!(!h.lower_path_mtu(0, 1300, 100 * S), "the same again holds it longer");
        // The hold is kept to about a second (2^30 ns) either way.
        assert_eq!(h.path_mtu(0, 100 * S + PATH_MTU_HOLD_NS - 2 * S), Some(1300));
        assert_eq!(h.path_mtu(0, 100 * S + PATH_MTU_HOLD_NS + 2 * S), None, "ten minutes on");
        // Once it lapsed, any value is news, a larger one too.
        assert!(h.lower_path_mtu(0, 1450, 100 * S + PATH_MTU_HOLD_NS + 2 * S));
        h.forget_path_mtu(0);
        assert_eq!(h.path_mtu(0, 701 * S), None);
    }

    /// The forwarding path goes back to reading the flag alone once every held value
    /// lapsed, and not before.
    #[test]
    fn the_flag_clears_when_the_last_path_mtu_lapses() {
        let h = HealthTable::new(2);
        h.expire_path_mtus(S);
        assert!(!h.any_path_mtu());
        assert!(h.lower_path_mtu(0, 1400, S) && h.lower_path_mtu(1, 1300, 300 * S));
        h.expire_path_mtus(602 * S);
        assert!(h.any_path_mtu(), "tunnel 1's still holds");
        assert_eq!((h.path_mtu(0, 0), h.path_mtu(1, 602 * S)), (None, Some(1300)), "tunnel 0's is cleared");
        h.expire_path_mtus(902 * S);
        assert!(!h.any_path_mtu());
        assert!(h.lower_path_mtu(0, 1200, 903 * S) && h.any_path_mtu());
    }

    /// An answered path MTU probe raises what errors set, for the rest of their hold (not a
    /// hold of its own), never lowers what holds, and forgets it when it was of the tunnel's
    /// own `mtu` (`None`).
    #[test]
    fn a_path_mtu_probe_answer_raises_the_held_mtu_for_the_rest_of_its_hold() {
        let h = HealthTable::new(1);
        assert!(!h.raise_path_mtu(0, Some(1400), S), "nothing held");
        assert!(h.lower_path_mtu(0, 528, S));
        assert!(!h.raise_path_mtu(0, Some(500), 2 * S), "never lower");
        let hold = h.path_mtus()[0] >> 32;
        assert!(h.raise_path_mtu(0, Some(1400), 300 * S));
        assert_eq!((h.path_mtu(0, 300 * S), h.path_mtus()[0] >> 32), (Some(1400), hold));
        assert!(!h.lower_path_mtu(0, 1450, 301 * S), "an error still never raises it");
        assert!(h.raise_path_mtu(0, None, 302 * S));
        assert_eq!(h.path_mtu(0, 302 * S), None);
    }

    /// A path or path MTU discovery a reload changed forgets the claims and doubts with the
    /// path MTUs: nothing is left for the prober to believe, and an error is news again.
    #[test]
    fn forgetting_path_mtus_forgets_claims_and_doubts() {
        let h = HealthTable::new(2);
        for t in 0..2 {
            h.doubt_path_mtu_errors(t, S);
            assert!(!h.path_mtu_error(t, 900, 2 * S), "doubted: claimed");
        }
        h.forget_path_mtu(0);
        assert_eq!((h.path_mtu_claim(0), h.path_mtu_claim(1)), (None, Some(900)));
        assert!(h.path_mtu_error(0, 800, 3 * S), "the new path's first error: lowered at once");
        h.forget_path_mtus();
        assert_eq!(h.path_mtu_claim(1), None);
        assert!(!h.settle_path_mtu_claim(1, true, 4 * S), "nothing left to believe");
        assert_eq!(h.path_mtu(1, 4 * S), None);
    }
}
