//! Applying a configuration built while running: the XDP program's tables widened to cover
//! both configurations, the snapshot taking over from the running one and swapped in, the
//! tables narrowed; a reload that fails anywhere is rejected whole, and said.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use transitd_bpf::XdpProgram;

use super::xdp_maps::{narrow, program_egress_and_config, program_tables, redirected, tunnel_remotes};
use crate::config::ConfigErrors;
use crate::snapshot::{Snapshot, Withdrawn};

/// Applies a configuration built from `what` (since `started`): swaps it in, the XDP
/// program's tables widened around the swap; `Err` (the build panicked) or a configuration
/// with errors is rejected whole (its errors printed) and the running snapshot stays.
/// Returns the snapshot it replaced when the new configuration was applied. `stale` is set
/// when the maps are left other than the running configuration's (narrowing, or putting
/// them back, failed), and cleared when this left them exactly the new one's.
pub(super) fn apply(
    what: &str,
    started: Instant,
    built: Result<Result<Snapshot, ConfigErrors>, ()>,
    shared: &ArcSwap<Snapshot>,
    program: &XdpProgram,
    stale: &AtomicBool,
) -> Option<Arc<Snapshot>> {
    // A panic while building is a bug, but the edge must outlive it: the builder only reads
    // its input and makes a new snapshot on its own thread, so nothing it leaves half-done
    // is shared.
    let mut new = match built {
        Err(_) => {
            log_line!(
                "transitd: reload of {what} rejected: building the configuration panicked (a bug in transitd: \
                 please report it with the file); the running configuration stays"
            );
            return None;
        }
        Ok(Err(errors)) => {
            log_line!("transitd: reload of {what} rejected, the running configuration stays:\n{errors}");
            return None;
        }
        Ok(Ok(new)) => new,
    };
    // The XDP program learns new prefixes before the workers see the snapshot that owns
    // them, and forgets old ones after, so no owned packet is passed meanwhile. The prefixes
    // this reload removes stay, held for their grace (the widening and the narrowing keep
    // them): BGP withdraws them from the next tick on, and their traffic, still on its way
    // here until upstreams converge, is dropped.
    let old = shared.load();
    let now = Instant::now();
    new.withdrawn = Withdrawn::after(&old, &new, now);
    if let Err(e) = widen(program, &old, &new, now) {
        put_back(program, &old, now, what, &e, stale);
        return None;
    }
    // Slices that change owner move their connections' return traffic to another server
    // (those open now break): said, as `transitd plan` says it of a plan made.
    let moved = match (&old.soft_unicast, &new.soft_unicast) {
        (Some(a), Some(b)) => moved_slices(&a.plan, &b.plan),
        _ => 0,
    };
    // Tunnel health, TCP list versions: what carries over, decided here once.
    new.take_over_from(&old);
    let replaced = shared.swap(Arc::new(new));
    let running = shared.load();
    narrow_to_running(program, &running, now, what, started, stale);
    say_held_and_moved(&running, now, moved);
    for warning in crate::config::warning_lines(&shared.load().warnings) {
        log_line!("transitd: warning: {warning}");
    }
    Some(replaced)
}

/// Widens the XDP program's tables to cover both the running configuration `old` and `new`
/// (owned prefixes and tunnel remotes of both, the withdrawn ones in their grace), and gives
/// it `new`'s egress tables and settings.
fn widen(program: &XdpProgram, old: &Snapshot, new: &Snapshot, now: Instant) -> Result<(), transitd_bpf::BpfError> {
    let ((mut v4, mut v6), (old_v4, old_v6)) = (redirected(new, now), redirected(old, now));
    v4.extend(old_v4);
    v6.extend(old_v6);
    let widened = program.set_owned_v4(&v4).and_then(|_| program.set_owned_v6(&v6));
    // Soft-unicast's tables move with the snapshot, published whole (the program reads the
    // old ones or the new ones); between the program's switch and the workers', the two may
    // disagree on an owner for a moment, which the hop limit in the backbone key turns into a
    // counted drop, never a loop.
    // Tunnel remotes, like prefixes: both sets while the swap is under way.
    let ((mut r4, mut r6), (o4, o6)) = (tunnel_remotes(new), tunnel_remotes(old));
    r4.extend(o4);
    r6.extend(o6);
    // A remote of both configurations is one entry of the map, not two.
    r4.sort_unstable();
    r4.dedup();
    r6.sort_unstable();
    r6.dedup();
    // The union first: the old remotes must stay while the workers run the old snapshot
    // (their GRE would otherwise go to the host for the whole update).
    widened.and_then(|_| program.set_tunnel_remotes(&r4, &r6)).and_then(|_| program_egress_and_config(program, new))
}

/// After widening for `what` failed (`e`): the program goes back to the running
/// configuration's (`old`) tables, and the workers never see the new one: a half-applied
/// reload would pass new prefixes' traffic to the host unfiltered. Said; `stale` set if
/// putting the tables back failed too.
fn put_back(
    program: &XdpProgram,
    old: &Snapshot,
    now: Instant,
    what: &str,
    e: &transitd_bpf::BpfError,
    stale: &AtomicBool,
) {
    let (old_v4, old_v6) = redirected(old, now);
    let restored = [
        program.set_owned_v4(&old_v4),
        program.set_owned_v6(&old_v6),
        program_tables(program, old), // the tunnel remotes too
    ];
    log_line!(
        "transitd: reload of {what} rejected: updating the XDP maps failed ({e}); the running configuration \
         stays"
    );
    for failed in restored.into_iter().filter_map(Result::err) {
        // The new configuration's prefixes may be left in, redirected to workers that do
        // not serve them: tried again every second (`retry_maps`).
        stale.store(true, Ordering::Relaxed);
        log_line!(
            "transitd: putting the XDP maps back as they were failed too ({failed}): tried again every second, \
             transitd_xdp_maps_stale is 1 until then"
        );
    }
}

/// Once `running` (the configuration from `what`, built since `started`) is swapped in:
/// what is left over from the old configuration goes from the program's tables; failing
/// that, it is only redirected to workers that no longer claim it (`stale` set). Said.
fn narrow_to_running(
    program: &XdpProgram,
    running: &Snapshot,
    now: Instant,
    what: &str,
    started: Instant,
    stale: &AtomicBool,
) {
    match narrow(program, running, now) {
        Ok(()) => {
            // The prefixes and remotes are the new configuration's alone (those an earlier
            // reload left stale included), and the withdrawn ones in their grace; the rest
            // was published whole.
            stale.store(false, Ordering::Relaxed);
            log_line!("transitd: reloaded {what} in {:.1} ms", started.elapsed().as_secs_f64() * 1e3)
        }
        Err(e) => {
            // The old prefixes and remotes stay redirected to workers that no longer serve
            // them: tried again every second (`retry_maps`), and said.
            stale.store(true, Ordering::Relaxed);
            log_line!(
                "transitd: reloaded {what}, but removing the old XDP map entries failed: {e}; their traffic goes \
                 to the workers (no_customer, or withdrawn_prefix while a grace holds it) until it succeeds: \
                 tried again every second, transitd_xdp_maps_stale is 1 until then"
            )
        }
    }
}

/// Says what a reload to `running` leaves the operator to know: the prefixes it withdrew,
/// held for their grace at `now`, and the port slices it `moved` to other servers.
fn say_held_and_moved(running: &Snapshot, now: Instant, moved: usize) {
    let held = running.withdrawn.in_grace(now).count();
    if held > 0 {
        let grace = running.bgp.as_ref().map_or(0, |b| b.withdrawn_grace.as_millis());
        log_line!(
            "transitd: {held} customer prefixes withdrawn by reloads are held for withdrawn_grace_ms ({grace} ms \
             from each one's removal): their traffic is dropped as withdrawn_prefix until upstreams have \
             converged"
        );
    }
    if moved > 0 {
        log_line!(
            "transitd: the reload moved {moved} port slices to other servers (their open connections' return \
             traffic goes to the new owner): `transitd plan --previous` lists them"
        );
    }
}

/// Slices of an address both plans hold whose owner differs between them; every slice of
/// the new plan when the slices themselves changed (`slice_size`, `reserved_ports`: a slice
/// of one is no slice of the other).
fn moved_slices(old: &portslice::Plan, new: &portslice::Plan) -> usize {
    if !old.same_slices(new) {
        return new.owners.values().map(Vec::len).sum();
    }
    new.owners
        .iter()
        .filter_map(|(ip, owners)| Some((owners, old.owners.get(ip)?)))
        .map(|(now, before)| now.iter().zip(before).filter(|(a, b)| a != b).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slices a reload says it moved are those a re-plan lists (portslice's own count of
    /// moves): a server joining data centre a of the test fleet takes ten.
    #[test]
    fn the_slices_a_reload_moves_are_the_replans_moves() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/soft-unicast.toml");
        let snap = Snapshot::from_path(&path).unwrap();
        let old = snap.soft_unicast.as_ref().unwrap().plan.clone();
        let mut spec = old.spec.clone();
        spec.data_centres.iter_mut().find(|d| d.name == "a").unwrap().servers.push("a3".into());
        let (new, moves) = portslice::Plan::replan(spec, Some(&old)).unwrap();
        assert_eq!(moves.len(), 10);
        assert_eq!(moved_slices(&old, &new), moves.len());
        assert_eq!(moved_slices(&old, &old), 0);
        // Other slices: every one of the new plan moved.
        let mut spec = old.spec.clone();
        spec.reserved_ports = 2048;
        let (resliced, _) = portslice::Plan::replan(spec, Some(&old)).unwrap();
        let all: usize = resliced.owners.values().map(Vec::len).sum();
        assert!(all > 0);
        assert_eq!(moved_slices(&old, &resliced), all);
    }
}
