//! Egress-address selection by tags: which address a connection for a user should leave
//! from.

use crate::plan::{Plan, Tags};

/// What a connection asks of its egress address; empty fields match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// Country (`GB`).
    pub country: String,
    /// Trust class (`untrusted`).
    pub class: String,
}

impl Want {
    fn accepts(&self, tags: &Tags) -> bool {
        (self.country.is_empty() || self.country.eq_ignore_ascii_case(&tags.country))
            && (self.class.is_empty() || self.class == tags.class)
    }
}

/// Egress addresses whose tags match `want`, those of data centre `local_dc` first (a
/// connection egresses locally when it can), each group in address order.
pub fn candidates(plan: &Plan, want: &Want, local_dc: &str) -> Vec<u32> {
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for r in plan.spec.egress.iter().filter(|r| want.accepts(&r.tags)) {
        let (lo, hi) = r.bounds();
        let into = if r.data_centre == local_dc { &mut local } else { &mut remote };
        into.extend(lo..=hi);
    }
    local.sort_unstable();
    remote.sort_unstable();
    local.extend(remote);
    local
}

/// The slices `server` owns on addresses matching `want`: `(address, first port, last
/// port)`. A server egresses only from its own slices.
pub fn own_slices(plan: &Plan, want: &Want, server: &str) -> Vec<(u32, u16, u16)> {
    plan.slices_of(server)
        .into_iter()
        .filter(|(ip, _, _)| {
            plan.spec.egress.iter().any(|r| (r.bounds().0..=r.bounds().1).contains(ip) && want.accepts(&r.tags))
        })
        .collect()
}
