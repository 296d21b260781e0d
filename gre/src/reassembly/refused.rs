//! The datagrams whose first fragment the caller refused lately ([`Reassembler::refuse`]),
//! and where it went: their fragments still to come are refused as they arrive, for
//! [`HOLD_NS`], not kept a slot's while for a datagram that will not be taken, and go where
//! their first went. In memory fixed when made.
//!
//! [`Reassembler::refuse`]: super::Reassembler::refuse

use super::{Datagram, FirstWent, HOLD_NS};

/// Datagrams refused, each with when and where its first fragment went.
#[derive(Clone, Debug)]
pub(super) struct Refused {
    /// `None`: free.
    entries: Vec<Option<(Datagram, u64, FirstWent)>>,
    /// When the newest was refused: past [`HOLD_NS`] after it, every entry is expired, and
    /// a fragment is answered without a scan (the common case: no GRE refused lately).
    newest: Option<u64>,
}

impl Refused {
    /// Room for `len` datagrams.
    pub(super) fn new(len: usize) -> Refused {
        Refused { entries: vec![None; len], newest: None }
    }

    /// Remembers `datagram`, refused at `now`, its first fragment gone as `went`: where it is
    /// already, or in a free place, or over the one refused longest ago (an expired one is
    /// older than any other).
    pub(super) fn insert(&mut self, datagram: Datagram, now: u64, went: FirstWent) {
        let own = self.entries.iter().position(|e| e.is_some_and(|(d, ..)| d == datagram));
        // `None` orders before `Some`: a free place first.
        let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.map(|(_, at, _)| at)).map(|(i, _)| i);
        if let Some(i) = own.or(oldest) {
            self.entries[i] = Some((datagram, now, went));
            self.newest = Some(self.newest.map_or(now, |n| n.max(now)));
        }
    }

    /// Every entry is older than [`HOLD_NS`] at `now` (or there is none).
    fn all_expired(&self, now: u64) -> bool {
        self.newest.is_none_or(|newest| now.saturating_sub(newest) > HOLD_NS)
    }

    /// Where the first fragment of `datagram` went, if it was refused within [`HOLD_NS`]
    /// before `now`.
    pub(super) fn went(&self, datagram: &Datagram, now: u64) -> Option<FirstWent> {
        if self.all_expired(now) {
            return None;
        }
        let fresh = |(d, at, _): &&(Datagram, u64, FirstWent)| d == datagram && now.saturating_sub(*at) <= HOLD_NS;
        self.entries.iter().flatten().find(fresh).map(|(.., went)| *went)
    }

    /// Forgets `datagram`: its identity is taken by another at `now` (identifications come
    /// round). An expired entry needs no forgetting: it is refused no more.
    pub(super) fn remove(&mut self, datagram: &Datagram, now: u64) {
        if self.all_expired(now) {
            return;
        }
        for e in &mut self.entries {
            if e.is_some_and(|(d, ..)| d == *datagram) {
                *e = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 datagram from 198.51.100.1 to 192.0.2.1, GRE, identification `id`.
    fn datagram(id: u32) -> Datagram {
        let (mut src, mut dst) = ([0; 16], [0; 16]);
        src[12..].copy_from_slice(&[198, 51, 100, 1]);
        dst[12..].copy_from_slice(&[192, 0, 2, 1]);
        Datagram { ipv6: false, src, dst, id, protocol: 47 }
    }

    #[test]
    fn a_datagram_is_refused_for_the_hold_and_no_longer() {
        let mut r = Refused::new(4);
        r.insert(datagram(1), 100, FirstWent::Dropped);
        assert_eq!(r.went(&datagram(1), 100), Some(FirstWent::Dropped));
        assert_eq!(r.went(&datagram(1), 100 + HOLD_NS), Some(FirstWent::Dropped));
        assert_eq!(r.went(&datagram(1), 101 + HOLD_NS), None);
        assert_eq!(r.went(&datagram(2), 100), None, "another identification");
        let other_protocol = Datagram { protocol: 4, ..datagram(1) };
        assert_eq!(r.went(&other_protocol, 100), None, "another protocol");
        let ipv6 = Datagram { ipv6: true, ..datagram(1) };
        assert_eq!(r.went(&ipv6, 100), None, "another family");
        // Refused again: the hold runs from then, and the first went where it went then.
        r.insert(datagram(1), 200, FirstWent::Passed);
        assert_eq!(r.went(&datagram(1), 200 + HOLD_NS), Some(FirstWent::Passed));
        r.remove(&datagram(1), 200);
        assert_eq!(r.went(&datagram(1), 200), None);
    }

    #[test]
    fn when_full_the_one_refused_longest_ago_makes_room() {
        let mut r = Refused::new(3);
        let kept = |r: &Refused, id, now| r.went(&datagram(id), now).is_some();
        for id in 1..=3 {
            r.insert(datagram(id), u64::from(id), FirstWent::Dropped);
        }
        r.insert(datagram(2), 10, FirstWent::Dropped); // refused again: it keeps its place, now the newest
        r.insert(datagram(4), 11, FirstWent::Dropped);
        assert!(!kept(&r, 1, 11), "the oldest, replaced");
        assert!([2, 3, 4].iter().all(|&id| kept(&r, id, 11)));
        r.insert(datagram(5), 12, FirstWent::Dropped);
        assert!(!kept(&r, 3, 12));
        assert!([2, 4, 5].iter().all(|&id| kept(&r, id, 12)));
        // None: remembers nothing.
        let mut none = Refused::new(0);
        none.insert(datagram(1), 0, FirstWent::Dropped);
        assert!(!kept(&none, 1, 0));
    }
}
