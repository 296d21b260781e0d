//! Where a run goes: the interface, its queues, and the CPUs its workers are pinned to, each
//! checked against the system before anything is attached.

use anyhow::{Context, bail};

use crate::limits::MAX_LIST_ENTRIES;
use crate::report::{counted, queue_list, ranges};
use crate::snapshot::Fate;

/// Parses `0-3` or `0,2,5` (or a mix), at most [`MAX_LIST_ENTRIES`] entries (counted before
/// any is stored).
pub fn parse_list(text: &str) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("`{part}` is not a number or a range like 0-3");
        let (a, b): (u32, u32) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
            None => {
                let n = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        anyhow::ensure!(a <= b, "bad range `{part}`");
        anyhow::ensure!(
            out.len() as u64 + u64::from(b - a) < MAX_LIST_ENTRIES as u64,
            "`{text}` lists more than {MAX_LIST_ENTRIES} entries"
        );
        out.extend(a..=b);
    }
    anyhow::ensure!(!out.is_empty(), "empty list `{text}`");
    Ok(out)
}

/// The queues to serve: all of the interface's rx queues, or those asked for, each one the
/// interface has (rx and tx: a socket sends on the queue it receives from), none twice.
pub(super) fn queues_to_serve(iface: &str, asked: Option<&[u32]>) -> anyhow::Result<Vec<u32>> {
    let all = queues(iface, "rx-")?;
    let tx = queues(iface, "tx-")?.len();
    let Some(asked) = asked else {
        anyhow::ensure!(
            all.len() <= transitd_bpf::MAX_QUEUES as usize,
            "{iface} has {} rx queues; transitd serves queues 0-{} (the XDP program's socket map): \
             choose them with --queues",
            all.len(),
            transitd_bpf::MAX_QUEUES - 1
        );
        // In copy mode the kernel silently sends nothing from a socket on a queue past the
        // device's tx queues (`__xsk_generic_xmit`); zero-copy drivers refuse the bind.
        anyhow::ensure!(
            all.len() <= tx,
            "{iface} has {} but {}, and a socket sends on the queue it receives from: choose {} with \
             --queues (or give it as many tx queues)",
            counted(all.len(), "rx queue"),
            counted(tx, "tx queue"),
            queue_list(&all[..tx])
        );
        return Ok(all);
    };
    let mut seen = std::collections::HashSet::new();
    for &q in asked {
        anyhow::ensure!(
            (q as usize) < all.len(),
            "--queues: {iface} has {} ({}), not queue {q}",
            counted(all.len(), "rx queue"),
            queue_list(&all)
        );
        anyhow::ensure!(
            q < transitd_bpf::MAX_QUEUES,
            "--queues: queue {q} is past the {} queues the XDP program has socket slots for",
            transitd_bpf::MAX_QUEUES
        );
        anyhow::ensure!(
            (q as usize) < tx,
            "--queues: {iface} has {}, not queue {q}, and a socket sends on the queue it receives from",
            counted(tx, "tx queue")
        );
        anyhow::ensure!(seen.insert(q), "--queues: queue {q} is listed twice");
    }
    Ok(asked.to_vec())
}

/// How many rx queues the interface has now, as sysfs lists them (`ethtool -L` changes it).
pub(super) fn rx_queue_count(iface: &str) -> anyhow::Result<usize> {
    Ok(queues(iface, "rx-")?.len())
}

/// What to say when `served` leaves some of the interface's `rx_queues` rx queues without a
/// worker: which, and what becomes of the owned traffic the NIC puts on them (`fate`, the
/// configuration's `unbound_queue`); `None` when every one is served.
pub(super) fn unserved(iface: &str, rx_queues: usize, served: &[u32], fate: Fate) -> Option<String> {
    let unserved: Vec<usize> = (0..rx_queues).filter(|&q| !served.iter().any(|&s| s as usize == q)).collect();
    let (noun, verb) = match unserved.len() {
        0 => return None,
        1 => ("queue", "has"),
        _ => ("queues", "have"),
    };
    let fate = match fate {
        Fate::Drop => "dropped by the XDP program",
        Fate::Pass => "passed to the host's stack unfiltered (unbound_queue = \"pass\")",
    };
    Some(format!(
        "{iface} has {} and {noun} {} {verb} no worker (served: {}): customers' traffic the NIC puts there \
         is {fate}, counted as no_socket (transitd_xdp_packets_total{{action=\"no_socket\"}})",
        counted(rx_queues, "rx queue"),
        ranges(&unserved),
        queue_list(served)
    ))
}

/// The CPUs this process may run on (its affinity mask: under a cpuset, the cpuset's), in
/// order; none if they cannot be read.
fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}

/// The CPUs the workers are pinned to, one per queue: `--cores` in order, each one this
/// process may run on; by default the allowed CPUs in turn (under a cpuset, its CPUs, not
/// CPU ids counted from zero).
pub(super) fn cores_for(queues: &[u32], asked: Option<&[usize]>) -> anyhow::Result<Vec<usize>> {
    let allowed = allowed_cpus();
    anyhow::ensure!(!allowed.is_empty(), "cannot read the CPUs this process may run on (sched_getaffinity)");
    match asked {
        None => {
            if queues.len() > allowed.len() {
                // Two busy-polling workers on one CPU take turns in scheduler slices of
                // milliseconds, and both rx rings overflow meanwhile: said, not refused (a
                // lab's veth has more queues than a small machine has CPUs).
                log_line!(
                    "transitd: warning: {} but {} to run on ({}): workers share CPUs; choose queues with \
                     --queues (and CPUs with --cores)",
                    counted(queues.len(), "queue"),
                    counted(allowed.len(), "CPU"),
                    ranges(&allowed)
                );
            }
            Ok((0..queues.len()).map(|i| allowed[i % allowed.len()]).collect())
        }
        Some(cores) => {
            anyhow::ensure!(
                cores.len() == queues.len(),
                "--cores lists {} for {}: give one per queue",
                counted(cores.len(), "CPU"),
                counted(queues.len(), "queue")
            );
            if let Some(c) = cores.iter().find(|c| !allowed.contains(c)) {
                anyhow::bail!("--cores: CPU {c} is not one this process may run on (allowed: {})", ranges(&allowed));
            }
            // Two busy-polling workers on one CPU take turns in scheduler slices, and both
            // rx rings overflow meanwhile.
            if let Some((i, c)) = cores.iter().enumerate().find(|(i, c)| cores[..*i].contains(c)) {
                anyhow::bail!(
                    "--cores: CPU {c} is listed twice (for queues {} and {}): give each queue its own",
                    queues[cores.iter().position(|x| x == c).unwrap_or(0)],
                    queues[i]
                );
            }
            Ok(cores.to_vec())
        }
    }
}

/// Keeps the threads this one starts from now on (reload builds, the neighbour follower, the
/// IPFIX exporter, metrics, BGP) off the workers' CPUs: a thread inherits its creator's CPU
/// set, and a busy-polling worker sharing its CPU with a helper loses its slice whenever the
/// helper runs (a reload's build takes tens of milliseconds: the rx ring overflows meanwhile).
/// The workers pin themselves, each to its own CPU, whatever this thread's set. When they
/// take every CPU there is nowhere else to go: said, and the set left as it is.
pub(super) fn keep_helpers_off(workers: &[usize]) -> anyhow::Result<()> {
    let allowed = allowed_cpus();
    let rest: Vec<usize> = allowed.iter().copied().filter(|c| !workers.contains(c)).collect();
    if rest.is_empty() {
        log_line!(
            "transitd: note: the workers take every CPU this process may run on ({}): reloads, \
             metrics and the other helpers share them",
            ranges(&allowed)
        );
        return Ok(());
    }
    let mut set = nix::sched::CpuSet::new();
    for &cpu in &rest {
        set.set(cpu).with_context(|| format!("CPU {cpu}"))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("keeping the helper threads on CPUs {}", ranges(&rest)))
}

/// The interface's queues of one direction (`rx-` or `tx-`), by their sysfs directories.
fn queues(iface: &str, direction: &str) -> anyhow::Result<Vec<u32>> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .with_context(|| format!("interface {iface}: {dir}"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(direction))
        .count();
    Ok((0..n as u32).collect())
}

/// The smallest MTU of a link that carries IPv6 (RFC 8200 section 5).
const IPV6_MIN_MTU: usize = 1280;

/// The smallest MTU of a link that carries IPv4 (RFC 791: every module forwards 68 bytes
/// unfragmented, a 60-byte header and the least fragment's 8): a tunnel's least `mtu`.
const IPV4_MIN_MTU: usize = 68;

/// What to say of the tunnels of `snap` whose `mtu`, with the outer headers, is more than
/// `iface`'s MTU `link` (the first ten, then how many more), and of a `backbone_mtu` more
/// than it: the data plane holds them to what fits.
pub(super) fn tunnels_past_link(snap: &crate::snapshot::Snapshot, iface: &str, link: usize) -> Vec<String> {
    const SAID: usize = 10;
    let past: Vec<_> = snap.tunnels.iter().filter(|t| t.mtu as usize > t.mtu_on_link(link)).collect();
    let mut lines: Vec<String> = past.iter().take(SAID).map(|t| tunnel_past_link(snap, t, iface, link)).collect();
    if past.len() > SAID {
        lines.push(format!("transitd: and {} more tunnels past {iface}'s MTU {link}", past.len() - SAID));
    }
    if snap.soft_unicast.is_some() && snap.backbone_mtu() > link {
        lines.push(format!(
            "transitd: backbone_mtu {} is more than {iface}'s MTU {link}: backbone packets are held to {link}",
            snap.backbone_mtu()
        ));
    }
    lines
}

/// The line for tunnel `t`, held by `iface`'s MTU `link` below its `mtu`. Its remedy is an
/// mtu that fits, unless it may carry IPv6 (an IPv6 route leads to it) and what fits is
/// less than IPv6's 1280 bytes: `check-config` refuses such an mtu for an IPv6 route, and
/// the data plane answers IPv6 packets of up to 1280 bytes with a Packet Too Big below 1280,
/// which their senders ignore (RFC 8201 section 4): those packets are lost until the link
/// is raised. Nor is it where what fits is less than IPv4's 68 bytes, which `check-config`
/// refuses for any tunnel: the link is the one to raise.
fn tunnel_past_link(snap: &crate::snapshot::Snapshot, t: &crate::snapshot::Tunnel, iface: &str, link: usize) -> String {
    let held = t.mtu_on_link(link);
    let head = format!(
        "transitd: tunnel {} has mtu {} ({} bytes with its outer headers), more than {iface}'s MTU {link}: it is held \
         to {held} (larger packets get ICMP errors or are fragmented)",
        t.name,
        t.mtu,
        t.mtu as usize + t.gre.overhead(),
    );
    // IPv6 reaches a tunnel through an IPv6 route alone (check-config holds those to 1280).
    let may_carry_ipv6 = snap.customers.get(usize::from(t.customer)).is_some_and(|c| {
        c.routes.ipv6_values().filter_map(|g| snap.route_groups.get(g as usize)).flatten().any(|n| n.tunnel == t.id)
    });
    if !may_carry_ipv6 && held < IPV4_MIN_MTU {
        return format!(
            "{head}, less than the {IPV4_MIN_MTU} bytes every IPv4 link carries (RFC 791), which is the least mtu \
             a tunnel takes; raise {iface}'s MTU to at least {}",
            IPV4_MIN_MTU + t.gre.overhead()
        );
    }
    if held >= IPV6_MIN_MTU || !may_carry_ipv6 {
        return format!("{head}; set its mtu to that");
    }
    format!(
        "{head}, less than the {IPV6_MIN_MTU} bytes IPv6 needs (RFC 8200 section 5): IPv6 packets of {} to \
         {IPV6_MIN_MTU} bytes through it are lost, as their senders ignore a Packet Too Big below {IPV6_MIN_MTU} \
         (RFC 8201 section 4); raise {iface}'s MTU to at least {}",
        held + 1,
        IPV6_MIN_MTU + t.gre.overhead()
    )
}

/// A frame's bytes beyond its MTU's: an Ethernet header and two VLAN tags.
pub(super) const FRAME_OVER_MTU: usize = 14 + 2 * 4;

pub(super) fn iface_mac(iface: &str) -> anyhow::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    <[u8; 6]>::try_from(bytes.as_slice()).map_err(|_| anyhow::anyhow!("cannot read the MAC of {iface}"))
}

/// The addresses `iface` has now, which no customer prefix may hold ([`Host`]); none when
/// there is no such interface (the run stops on that by itself) or they cannot be read
/// (said: the check is skipped, not the start or the reload).
///
/// [`Host`]: crate::snapshot::Host
pub(super) fn own_addresses(iface: &str) -> Vec<std::net::IpAddr> {
    let Ok(index) = ifindex(iface) else { return Vec::new() };
    crate::netdev::addresses(index as u32).unwrap_or_else(|e| {
        log_line!(
            "transitd: warning: cannot read {iface}'s addresses ({e}): customer prefixes are not checked against them"
        );
        Vec::new()
    })
}

/// What became of interface `iface`, ifindex `index` at start, when its name no longer finds
/// that index: renamed (the index has another name now), or gone. `None` when the index
/// still has that name (the lookup by name failed for want of a file descriptor, say).
pub(super) fn what_became_of(iface: &str, index: i32) -> Option<String> {
    match crate::netdev::name_of(index as u32) {
        Ok(Some(name)) if name == iface => None,
        Ok(Some(name)) => Some(format!(
            "{iface} (ifindex {index}) was renamed to {name}: stopping (the run follows the interface by its name: \
             start it again with --iface {name})"
        )),
        Ok(None) => Some(format!("{iface} went away (it was ifindex {index}): stopping")),
        Err(e) => {
            Some(format!("{iface} went away (it was ifindex {index}; looking the index up failed: {e}): stopping"))
        }
    }
}

/// The name interface `index` has now: `iface`, its name at start, unless it was renamed.
/// When that cannot be learnt (the interface went away), `iface`: what is read by it then
/// fails as it would have.
pub(super) fn name_now(iface: &str, index: i32) -> String {
    crate::netdev::name_of(index as u32).ok().flatten().unwrap_or_else(|| iface.to_string())
}

pub(super) fn ifindex(iface: &str) -> anyhow::Result<i32> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string and returns 0 on failure.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        bail!("no interface named {iface}");
    }
    Ok(i as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tunnels whose packets with GRE over IPv4 (24 bytes, 28 keyed) or IPv6 (44) do not fit
    /// the link are named, with the mtu that would fit.
    #[test]
    fn tunnels_past_the_links_mtu_are_named() {
        let text = "[server]\nanycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db8::1\"\n\
                    [[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n\
                    [[customer.tunnel]]\nname = \"fits\"\nremote = \"198.51.100.1\"\nmtu = 1476\n\
                    [[customer.tunnel]]\nname = \"keyed\"\nremote = \"198.51.100.2\"\nkey = 1\nmtu = 1476\n\
                    [[customer.tunnel]]\nname = \"six\"\nremote = \"2001:db8::2\"\nmtu = 1460\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"fits\"\n";
        let snap = crate::snapshot::Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap();
        let said = tunnels_past_link(&snap, "eth0", 1500);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].starts_with("transitd: tunnel keyed has mtu 1476 (1504 bytes"), "{said:?}");
        assert!(said[0].contains("it is held to 1472 (larger packets"), "{said:?}");
        assert!(said[1].starts_with("transitd: tunnel six has mtu 1460 (1504 bytes"), "{said:?}");
        assert!(tunnels_past_link(&snap, "eth0", 9000).is_empty());
        // A backbone larger than the link is named too.
        let fleet =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/soft-unicast.toml")).unwrap();
        let snap = crate::snapshot::Snapshot::build(&crate::config::parse("f.toml", &fleet).unwrap()).unwrap();
        assert_eq!(snap.backbone_mtu(), 1500);
        let said = tunnels_past_link(&snap, "eth0", 1400);
        let backbone = "transitd: backbone_mtu 1500 is more than eth0's MTU 1400: backbone packets are held to 1400";
        assert_eq!(said.last().map(String::as_str), Some(backbone), "{said:?}");
        assert!(!tunnels_past_link(&snap, "eth0", 1500).iter().any(|l| l.contains("backbone")));
    }

    /// A link that holds a tunnel of a customer with IPv6 prefixes below 1280 bytes is not
    /// remedied by the tunnel's mtu (check-config refuses one below 1280 for an IPv6 route,
    /// RFC 8200 section 5), and IPv6 packets of up to 1280 bytes are lost on it (their
    /// senders ignore the Packet Too Big below 1280 the data plane answers with, RFC 8201
    /// section 4, as a Linux sender did in the veth lab): the link's MTU is the remedy. An
    /// IPv4 customer's tunnel may still take the mtu that fits.
    #[test]
    fn a_link_that_holds_an_ipv6_tunnel_below_1280_is_the_one_to_raise() {
        let text = "[server]\nanycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db8::1\"\n\
                    [[customer]]\nname = \"six\"\nprefixes = [\"2001:db8:acbe::/48\"]\n\
                    [[customer.tunnel]]\nname = \"t6\"\nremote = \"2001:db8:3::1\"\nchecksum = true\n\
                    [[customer.route]]\nprefix = \"2001:db8:acbe::/48\"\ntunnel = \"t6\"\n\
                    [[customer]]\nname = \"four\"\nprefixes = [\"203.0.113.0/24\", \"2001:db8:4::/48\"]\n\
                    [[customer.tunnel]]\nname = \"t4\"\nremote = \"198.51.100.1\"\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"t4\"\n";
        let snap = crate::snapshot::Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap();
        // GRE over IPv6 with a checksum: 48 bytes of outer headers; over IPv4: 24.
        let said = tunnels_past_link(&snap, "eth0", 1300);
        assert_eq!(said.len(), 2, "{said:?}");
        let six = said.iter().find(|l| l.starts_with("transitd: tunnel t6 ")).unwrap();
        assert!(six.contains("it is held to 1252 (larger packets"), "{six}");
        assert!(six.contains("IPv6 packets of 1253 to 1280 bytes through it are lost"), "{six}");
        assert!(six.ends_with("raise eth0's MTU to at least 1328"), "{six}");
        assert!(!six.contains("set its mtu"), "an mtu of 1252 is refused for its IPv6 route: {six}");
        // A dual-stack customer's tunnel no IPv6 route leads to carries no IPv6.
        let four = said.iter().find(|l| l.starts_with("transitd: tunnel t4 ")).unwrap();
        let fits = "(larger packets get ICMP errors or are fragmented); set its mtu to that";
        assert!(four.ends_with(&format!("it is held to 1276 {fits}")), "{four}");
        // At 1328 the IPv6 tunnel takes 1280 whole: an mtu that fits is the remedy again.
        let said = tunnels_past_link(&snap, "eth0", 1328);
        let six = said.iter().find(|l| l.starts_with("transitd: tunnel t6 ")).unwrap();
        assert!(six.ends_with(&format!("it is held to 1280 {fits}")), "{six}");
    }

    /// A link that holds a tunnel below IPv4's 68 bytes (RFC 791: what every IPv4 link
    /// carries) is not remedied by the tunnel's mtu either: check-config refuses one below 68.
    /// A veth of MTU 80 held a keyed tunnel (28 bytes of outer headers) to 52, and `run` said
    /// "set its mtu to that", which check-config refused ("tunnel mtu 52 is not in
    /// 68..=65507"). At every link MTU from 60 to 200, the mtu the line names is one the
    /// configuration takes, and where it names none, the link it names holds the tunnel to 68.
    #[test]
    fn every_mtu_the_line_names_is_one_check_config_takes() {
        let config = |mtu: &str| {
            format!(
                "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n\
                 [[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\nkey = 1\n{mtu}\
                 [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"t\"\n"
            )
        };
        let build = |text: &str| crate::snapshot::Snapshot::build(&crate::config::parse("t.toml", text).unwrap());
        let snap = build(&config("")).unwrap();
        for link in 60..=200 {
            let said = tunnels_past_link(&snap, "eth0", link);
            let [line] = &said[..] else { panic!("{link}: {said:?}") };
            let held = link - 28;
            assert!(line.contains(&format!("it is held to {held} (larger packets")), "{line}");
            if line.ends_with("; set its mtu to that") {
                let fitted = config(&format!("mtu = {held}\n"));
                assert!(build(&fitted).is_ok(), "{link}: the mtu named, {held}, is refused: {line}");
            } else {
                assert!(line.ends_with("raise eth0's MTU to at least 96"), "{link}: {line}");
                assert!(build(&config(&format!("mtu = {held}\n"))).is_err(), "{link}: {held} is taken: {line}");
            }
        }
        let said = tunnels_past_link(&snap, "eth0", 80);
        assert!(said[0].contains("less than the 68 bytes every IPv4 link carries (RFC 791)"), "{said:?}");
    }

    #[test]
    fn queue_lists_parse() {
        assert_eq!(parse_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_list("0,2, 5-6").unwrap(), vec![0, 2, 5, 6]);
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("x").is_err());
        // Refused by counting, before 16 GiB of queue numbers are made.
        let e = parse_list("0-4294967295").unwrap_err().to_string();
        assert!(e.contains("more than 1024 entries"), "{e}");
        assert_eq!(parse_list("0-1023").unwrap().len(), 1024);
        assert!(parse_list("0-1022,5000-5001").is_err());
    }

    #[test]
    fn queues_without_a_worker_are_named_with_their_traffics_fate() {
        assert_eq!(unserved("eth1", 4, &[3, 0, 1, 2], Fate::Drop), None);
        let said = unserved("eth1", 2, &[0], Fate::Drop).unwrap();
        assert!(said.starts_with("eth1 has 2 rx queues and queue 1 has no worker (served: queue 0): "), "{said}");
        assert!(said.contains("is dropped by the XDP program, counted as no_socket"), "{said}");
        let said = unserved("eth1", 8, &[2, 3], Fate::Pass).unwrap();
        assert!(said.contains("and queues 0-1,4-7 have no worker (served: queues 2-3)"), "{said}");
        assert!(said.contains("passed to the host's stack unfiltered (unbound_queue = \"pass\")"), "{said}");
    }

    #[test]
    fn cpu_lists_print_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(ranges(&[5]), "5");
        assert_eq!(queue_list(&[0]), "queue 0");
        assert_eq!(queue_list(&[0, 1, 3]), "queues 0-1,3");
    }

    #[test]
    fn cores_must_be_allowed_and_one_per_queue() {
        let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap().into_iter().map(|c| c.id).collect();
        let e = cores_for(&[0], Some(&[9999])).unwrap_err().to_string();
        assert!(e.contains("CPU 9999 is not one this process may run on"), "{e}");
        assert!(cores_for(&[0, 1], Some(&[allowed[0]])).unwrap_err().to_string().contains("one per queue"));
        let e = cores_for(&[3, 5], Some(&[allowed[0], allowed[0]])).unwrap_err().to_string();
        assert!(e.contains(&format!("CPU {} is listed twice (for queues 3 and 5)", allowed[0])), "{e}");
        // By default, queue i goes to the i-th allowed CPU, whatever the CPU ids are.
        let queues: Vec<u32> = (0..allowed.len() as u32 + 1).collect();
        let cores = cores_for(&queues, None).unwrap();
        assert_eq!(cores[..allowed.len()], allowed[..]);
        assert_eq!(cores[allowed.len()], allowed[0]);
    }
}
