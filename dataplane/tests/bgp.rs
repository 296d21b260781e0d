//! What a server announces (`transitd bgp show`), checked outside transitd: BIRD 2 itself
//! parses the include file transitd writes, and the prefixes in it are those a reading of
//! the configuration file (the `toml` crate's, not transitd's) finds: the anycast addresses,
//! every customer prefix, every soft-unicast egress prefix. A customer prefix all of whose
//! routes' tunnels are down is withdrawn when so configured, and only then.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use ipnet::IpNet;
use transitd::bgp::Announcements;

/// `transitd bgp show --config FILE`.
fn show(config: &std::path::Path) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_transitd")).args(["bgp", "show", "--config"]).arg(config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The routes of the include file as BIRD reads them: `bird -p` parses a configuration that
/// includes it (and fails on anything it would refuse), then the file's `route` lines.
fn parsed_by_bird(include: &str, name: &str) -> BTreeSet<String> {
    let dir = scratch_dir(&format!("bgp-{name}"));
    std::fs::write(dir.join("routes.conf"), include).unwrap();
    let conf = format!(
        "router id 10.0.0.1;\nprotocol device {{}}\ninclude \"{}/routes.conf\";\n\
         protocol bgp up {{ local as 65001; neighbor 10.0.0.2 as 65000; \
         ipv4 {{ import none; export where proto = \"transitd4\"; }}; ipv6 {{ import none; export where proto = \"transitd6\"; }}; }}\n",
        dir.display()
    );
    std::fs::write(dir.join("bird.conf"), conf).unwrap();
    let out = Command::new("bird")
        .args(["-p", "-c"])
        .arg(dir.join("bird.conf"))
        .output()
        .expect("BIRD 2 (apt-get install bird2, or run .ci/run)");
    assert!(out.status.success(), "BIRD refuses the include:\n{include}\n{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    include
        .lines()
        .filter_map(|l| l.trim().strip_prefix("route ")?.strip_suffix(" blackhole;").map(str::to_string))
        .collect()
}

/// The prefixes the configuration file names, read with the `toml` crate.
fn named_in(config: &std::path::Path) -> BTreeSet<String> {
    let doc: toml::Table = std::fs::read_to_string(config).unwrap().parse().unwrap();
    let mut out = BTreeSet::new();
    let server = doc["server"].as_table().unwrap();
    out.insert(format!("{}/32", server["anycast"].as_str().unwrap()));
    if let Some(v6) = server.get("anycast_v6") {
        out.insert(format!("{}/128", v6.as_str().unwrap()));
    }
    let arrays = |v: Option<&toml::Value>| v.and_then(|v| v.as_array()).cloned().unwrap_or_default();
    for customer in arrays(doc.get("customer")) {
        for p in arrays(customer.get("prefixes")) {
            out.insert(p.as_str().unwrap().to_string());
        }
    }
    let egress = doc.get("soft_unicast").and_then(|s| s.get("egress"));
    for e in arrays(egress) {
        out.insert(e["prefix"].as_str().unwrap().to_string());
    }
    out
}

#[test]
fn bird_reads_what_transitd_writes_and_it_is_what_the_configuration_names() {
    for (name, config) in [
        ("acme", root().join("examples/acme.toml")),
        ("soft-unicast", root().join("dataplane/tests/data/soft-unicast.toml")),
        ("tunnel-edge", root().join("dataplane/tests/data/tunnel-edge.toml")),
    ] {
        let routes = parsed_by_bird(&show(&config), name);
        assert_eq!(routes, named_in(&config), "{name}");
        assert!(routes.len() >= 2, "{name}: {routes:?}");
    }
}

#[test]
fn an_empty_announcement_still_defines_both_protocols_for_the_operators_filters() {
    let text = transitd::bgp::bird::render(&Announcements::none());
    assert!(parsed_by_bird(&text, "empty").is_empty());
}

const TWO_CUSTOMERS: &str = r#"
[server]
anycast = "192.0.2.1"
next_hop_mac = "02:00:00:00:00:fe"
[bgp]
bird_include = "/run/transitd/bird.conf"
withdraw_customers_without_tunnels = WITHDRAW
[[customer]]
name = "a"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "a1"
remote = "198.51.100.1"
interface = "10.213.0.0/31"
[[customer.tunnel]]
name = "a2"
remote = "198.51.100.2"
interface = "10.213.0.2/31"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "a1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "a2"
priority = 200
[[customer]]
name = "b"
prefixes = ["198.18.0.0/24"]
[[customer.tunnel]]
name = "b1"
remote = "198.51.100.3"
[[customer.route]]
prefix = "198.18.0.0/24"
tunnel = "b1"
"#;

fn announced(snap: &transitd::snapshot::Snapshot) -> Vec<String> {
    Announcements::of(snap).0.iter().map(|n| n.to_string()).collect()
}

#[test]
fn a_customer_whose_probed_tunnels_are_all_down_is_withdrawn_when_so_configured() {
    let snap = snapshot(&TWO_CUSTOMERS.replace("WITHDRAW", "true"));
    let everything = ["192.0.2.1/32", "198.18.0.0/24", "203.0.113.0/24"];
    // Until the prober has judged one of a's probed tunnels, a is not counted on: a dead
    // customer was announced at every start and withdrawn a few probes later.
    assert_eq!(announced(&snap), ["192.0.2.1/32", "198.18.0.0/24"], "nothing judged yet");
    snap.health.set_judged(1);
    assert_eq!(announced(&snap), everything, "one tunnel answered");
    snap.health.set_judged(0);
    snap.health.set_up(0, false);
    assert_eq!(announced(&snap), everything, "a's backup tunnel is up");
    snap.health.set_up(1, false);
    assert_eq!(announced(&snap), ["192.0.2.1/32", "198.18.0.0/24"], "a is unreachable from here");
    snap.health.set_up(1, true);
    assert_eq!(announced(&snap), everything);

    let snap = snapshot(&TWO_CUSTOMERS.replace("WITHDRAW", "false"));
    snap.health.set_up(0, false);
    snap.health.set_up(1, false);
    assert_eq!(announced(&snap), everything, "without the option, a stays announced");
}

/// acme's one route takes acme-gre; acme-spare (no `interface`: never probed, never down)
/// is in no route, as a tunnel its router only sends from. With acme-gre down acme's traffic
/// still goes into it (a group with every tunnel down takes them anyway) and is lost here: the
/// prefix is withdrawn, so that anycast takes the traffic to a server that reaches acme.
/// Judged by all of acme's tunnels, acme-spare kept it announced (a lab: BIRD's upstream
/// kept 203.0.113.0/24 after `tunnel acme-gre down`).
#[test]
fn a_tunnel_no_route_takes_keeps_no_prefix_announced() {
    let text = r#"
[server]
anycast = "192.0.2.1"
[bgp]
withdraw_customers_without_tunnels = true
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "acme-gre"
remote = "198.51.100.1"
interface = "10.213.0.0/31"
[[customer.tunnel]]
name = "acme-spare"
remote = "198.51.100.9"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "acme-gre"
"#;
    let snap = snapshot(text);
    snap.health.set_judged(0);
    assert_eq!(announced(&snap), ["192.0.2.1/32", "203.0.113.0/24"]);
    snap.health.set_up(0, false);
    assert_eq!(announced(&snap), ["192.0.2.1/32"], "acme-spare carries none of it");
}

/// Each prefix goes by the tunnels its own routes take: one of a customer's prefixes whose
/// tunnels are down is withdrawn while the other, whose tunnel answers, stays. So does a
/// prefix whose one wide route longer ones hold whole: no address of it takes that route's
/// tunnel, which serves none of it. A prefix no route covers drops its traffic whatever the
/// tunnels do (said when the configuration is read): it is not withdrawn for them.
#[test]
fn each_prefix_is_withdrawn_for_the_tunnels_of_its_own_routes() {
    let text = r#"
[server]
anycast = "192.0.2.1"
[bgp]
withdraw_customers_without_tunnels = true
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24", "198.18.0.0/24", "198.18.1.0/24"]
[[customer.tunnel]]
name = "east"
remote = "198.51.100.1"
interface = "10.213.0.0/31"
[[customer.tunnel]]
name = "west"
remote = "198.51.100.2"
interface = "10.213.0.2/31"
[[customer.tunnel]]
name = "wide"
remote = "198.51.100.3"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "east"
[[customer.route]]
prefix = "198.18.0.0/24"
tunnel = "wide"
[[customer.route]]
prefix = "198.18.0.0/25"
tunnel = "west"
[[customer.route]]
prefix = "198.18.0.128/25"
tunnel = "west"
"#;
    let snap = snapshot(text);
    snap.health.set_judged(0);
    snap.health.set_judged(1);
    let everything = ["192.0.2.1/32", "198.18.0.0/24", "198.18.1.0/24", "203.0.113.0/24"];
    assert_eq!(announced(&snap), everything);
    snap.health.set_up(0, false);
    assert_eq!(announced(&snap), ["192.0.2.1/32", "198.18.0.0/24", "198.18.1.0/24"], "east's prefix alone");
    snap.health.set_up(0, true);
    snap.health.set_up(1, false);
    assert_eq!(
        announced(&snap),
        ["192.0.2.1/32", "198.18.1.0/24", "203.0.113.0/24"],
        "the /25s hold all of 198.18.0.0/24: wide takes none of it"
    );
    snap.health.set_up(0, false);
    assert_eq!(announced(&snap), ["192.0.2.1/32", "198.18.1.0/24"], "no route: nothing to judge it by");
}

/// A small configuration drawn at random, with what the brute force reads of it.
struct Drawn {
    text: String,
    /// Each customer's prefixes.
    prefixes: Vec<Vec<IpNet>>,
    /// Each tunnel's customer and whether it is probed (tunnel `i` is `t{i}`).
    tunnels: Vec<(usize, bool)>,
    /// Each route's prefix and tunnel (a customer's own).
    routes: Vec<(IpNet, usize)>,
}

/// A configuration at random: two customers (a /24 and an IPv6 /120; a /25), each with one to
/// three tunnels (probed or not) and up to six routes, each inside one of its prefixes and up
/// to three bits longer, to a tunnel of its own at a random priority and weight.
fn drawn(rng: &mut Rng) -> Drawn {
    let owned: [&[&str]; 2] = [&["203.0.113.0/24", "2001:db8::/120"], &["198.18.0.0/25"]];
    let mut d = Drawn {
        text: "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdraw_customers_without_tunnels = true\n".to_string(),
        prefixes: Vec::new(),
        tunnels: Vec::new(),
        routes: Vec::new(),
    };
    for (c, owned) in owned.iter().enumerate() {
        let nets: Vec<IpNet> = owned.iter().map(|p| p.parse().unwrap()).collect();
        d.text += &format!("[[customer]]\nname = \"c{c}\"\nprefixes = {owned:?}\n");
        let first = d.tunnels.len();
        for t in first..first + 1 + rng.below(3) {
            let probed = rng.below(3) != 0;
            d.text += &format!("[[customer.tunnel]]\nname = \"t{t}\"\nremote = \"198.51.100.{}\"\n", t + 1);
            if probed {
                d.text += &format!("interface = \"10.213.0.{}/31\"\n", 2 * t);
            }
            d.tunnels.push((c, probed));
        }
        for _ in 0..rng.below(7) {
            let within = nets[rng.below(nets.len())];
            let longer = rng.below(4) as u8;
            let net = within.subnets(within.prefix_len() + longer).unwrap().nth(rng.below(1 << longer)).unwrap();
            let tunnel = first + rng.below(d.tunnels.len() - first);
            if d.routes.contains(&(net, tunnel)) {
                continue; // a duplicate route is refused
            }
            d.text += &format!(
                "[[customer.route]]\nprefix = \"{net}\"\ntunnel = \"t{tunnel}\"\npriority = {}\nweight = {}\n",
                [100, 200][rng.below(2)],
                1 + rng.below(3)
            );
            d.routes.push((net, tunnel));
        }
        d.prefixes.push(nets);
    }
    d
}

/// Every address of `net`.
fn addresses(net: IpNet) -> Vec<std::net::IpAddr> {
    match net {
        IpNet::V4(n) => {
            let (first, last) = (u32::from(n.network()), u32::from(n.broadcast()));
            (first..=last).map(|a| std::net::Ipv4Addr::from(a).into()).collect()
        }
        IpNet::V6(n) => {
            let (first, last) = (u128::from(n.network()), u128::from(n.broadcast()));
            (first..=last).map(|a| std::net::Ipv6Addr::from(a).into()).collect()
        }
    }
}

/// `withdraw_customers_without_tunnels` by brute force over random small configurations,
/// from docs/tunnels.md ("Routing over several tunnels"): each address of a customer prefix
/// takes the routes of the longest route prefix holding it, and of their tunnels those up
/// (with all down, the best priority's anyway: its traffic is lost here). So a prefix serves
/// as well as the best tunnel some address of it takes: `Yes` (not probed; probed, up and
/// judged), `NotJudged` (up, its probes not judged yet) or `No` (down); a prefix no route
/// covers has no tunnel to be withdrawn for (`Yes`). Every address of every prefix is walked,
/// the tunnels set at random to each state; `Announcements::of` announces what serves, and
/// `held` is asked each prefix's state. Judged by all of a customer's tunnels, a prefix was
/// announced for a tunnel none of its addresses take. A prefix some address of which takes
/// only tunnels that are down while another is served is partly unreachable
/// (`partly_unreachable_prefixes`, by customer): announced whole, its traffic to those
/// addresses is lost here. Counted as served, it was in no gauge.
#[test]
fn a_prefix_serves_as_the_best_tunnel_its_addresses_take() {
    use transitd::bgp::Serving;
    let mut rng = Rng(0x7769_7468_6472_6177);
    let (mut withdrawn, mut unrouted, mut partly_lost) = (0, 0, 0);
    for _ in 0..200 {
        let d = drawn(&mut rng);
        let snap = snapshot(&d.text);
        for _ in 0..4 {
            let mut state = Vec::new();
            for (i, &(_, probed)) in d.tunnels.iter().enumerate() {
                let id = snap.tunnels.iter().find(|t| t.name == format!("t{i}")).unwrap().id;
                // Not probed: never down, never judged. Judged, a tunnel stays so.
                let up = !probed || rng.below(2) == 0;
                snap.health.set_up(id, up);
                if probed && rng.below(2) == 0 {
                    snap.health.set_judged(id);
                }
                state.push(match (up, !probed || snap.health.judged(id)) {
                    (false, _) => Serving::No,
                    (true, true) => Serving::Yes,
                    (true, false) => Serving::NotJudged,
                });
            }
            let mut expected = std::collections::BTreeMap::new();
            let mut expected_partly = vec![0u64; d.prefixes.len()];
            for (c, nets) in d.prefixes.iter().enumerate() {
                let theirs: Vec<&(IpNet, usize)> = d.routes.iter().filter(|r| d.tunnels[r.1].0 == c).collect();
                for &net in nets {
                    let (mut best, mut worst): (Option<Serving>, Option<Serving>) = (None, None);
                    for a in addresses(net) {
                        let holding = theirs.iter().filter(|r| r.0.contains(&a));
                        let Some(longest) = holding.map(|r| r.0).max_by_key(|n| n.prefix_len()) else { continue };
                        let taken = theirs.iter().filter(|r| r.0 == longest).map(|r| state[r.1]).max();
                        best = best.max(taken);
                        worst = worst.min(taken).or(taken);
                    }
                    unrouted += usize::from(best.is_none());
                    expected.insert(net, best.unwrap_or(Serving::Yes));
                    // Some address's traffic lost here, another's served.
                    if worst == Some(Serving::No) && best > Some(Serving::No) {
                        expected_partly[c] += 1;
                    }
                }
            }
            let by_name: Vec<usize> = (0..d.prefixes.len())
                .map(|c| snap.customers.iter().position(|x| x.name == format!("c{c}")).unwrap())
                .collect();
            let partly = transitd::bgp::partly_unreachable_prefixes(&snap);
            let partly: Vec<u64> = by_name.iter().map(|&i| partly[i]).collect();
            assert_eq!(partly, expected_partly, "tunnel states {state:?} in\n{}", d.text);
            partly_lost += expected_partly.iter().sum::<u64>();
            let mut asked = std::collections::BTreeMap::new();
            Announcements::held(&snap, |net, serving| {
                asked.insert(net, serving);
                true
            });
            assert_eq!(asked, expected, "tunnel states {state:?} in\n{}", d.text);
            let of = Announcements::of(&snap);
            for (net, serving) in &expected {
                assert_eq!(of.0.contains(net), *serving == Serving::Yes, "{net}, {state:?} in\n{}", d.text);
                withdrawn += usize::from(*serving == Serving::No);
            }
        }
    }
    // The drawings reach each case: prefixes withdrawn, prefixes without a route, and
    // prefixes lost in part.
    assert!(withdrawn > 100 && unrouted > 100, "{withdrawn} withdrawn, {unrouted} unrouted");
    assert!(partly_lost > 50, "{partly_lost} partly unreachable");
}

#[test]
fn bad_bgp_settings_are_refused_at_their_position() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nbird_socket = \"bird.ctl\"\nwithdraw_after_ms = 50\n\
                graceful_shutdown_ms = 30001\nwithdrawn_grace_ms = 600001\n";
    let loaded = transitd::config::parse("bgp.toml", text).unwrap();
    let errors: Vec<String> =
        transitd::snapshot::Snapshot::build(&loaded).err().unwrap().0.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [
            "bgp.toml:4:15: bird_socket `bird.ctl` is not an absolute path",
            "bgp.toml:5:21: withdraw_after_ms 50 is not in 500..=60000",
            "bgp.toml:6:24: graceful_shutdown_ms 30001 is not in 0..=30000",
            "bgp.toml:7:22: withdrawn_grace_ms 600001 is not in 0..=600000"
        ]
    );
}

/// Every customer prefix is announced: a /0 would be a default route to the upstreams.
/// Without `[bgp]` it is only a catch-all for replay and tests.
#[test]
fn a_default_route_is_never_announced() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nbird_socket = \"/run/bird/bird.ctl\"\n\n\
                [[customer]]\nname = \"all\"\nprefixes = [\"0.0.0.0/0\", \"::/0\"]\n";
    let errors = |text: &str| {
        let loaded = transitd::config::parse("bgp.toml", text).unwrap();
        transitd::snapshot::Snapshot::build(&loaded)
            .err()
            .map(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(
        errors(text).unwrap(),
        [
            "bgp.toml:8:13: customer prefix 0.0.0.0/0 would be announced as a default route ([bgp])",
            "bgp.toml:8:26: customer prefix ::/0 would be announced as a default route ([bgp])"
        ]
    );
    assert!(errors(&text.replace("[bgp]\nbird_socket = \"/run/bird/bird.ctl\"\n", "")).is_none());
}

/// An include that moved leaves nothing defined behind: two files under one `include
/// "…/*.conf"` that both define transitd4 and transitd6 make BIRD refuse its whole
/// configuration (`bird -p`, BIRD's own parser, is the oracle).
#[test]
fn a_vacated_include_defines_nothing_twice() {
    let dir = scratch_dir("bgp-vacate");
    let conf = dir.join("bird.conf");
    std::fs::write(&conf, format!("router id 10.0.0.1;\nprotocol device {{}}\ninclude \"{}/*.inc\";\n", dir.display()))
        .unwrap();
    let routes = Announcements(["203.0.113.0/24".parse().unwrap()].into_iter().collect());
    let (old, new) = (dir.join("bird.inc"), dir.join("edge.inc"));
    transitd::bgp::bird::write_include(&old, &Announcements::none()).unwrap();
    transitd::bgp::bird::write_include(&new, &routes).unwrap();
    let operators = dir.join("operator.inc");
    std::fs::write(&operators, "# the operator's own\n").unwrap();
    // Another transitd's live include in the same directory (its guard holds the lock).
    let live = dir.join("other.live");
    transitd::bgp::bird::write_include(&live, &routes).unwrap();
    let held = transitd::bgp::lock_include(&live).unwrap();
    let parses = || Command::new("bird").args(["-p", "-c"]).arg(&conf).output().unwrap();
    let twice = parses();
    // A start finds what an earlier run left (the path changed while no guard ran).
    let vacated = transitd::bgp::bird::vacate_others(&new);
    let once = parses();
    let untouched = std::fs::read_to_string(&operators).unwrap();
    let still = std::fs::read_to_string(&live).unwrap();
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already defined"), "{twice:?}");
    assert_eq!(vacated, [old]);
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    assert_eq!(untouched, "# the operator's own\n");
    assert!(still.contains("203.0.113.0/24"), "a live guard's include is left alone: {still}");
}

/// `withdraw` needs a `[bgp]` section; `show` previews what one would announce, and says
/// that the file announces nothing as it is.
#[test]
fn withdraw_needs_a_bgp_section_and_show_says_it_is_missing() {
    let config = root().join("examples/acme.toml");
    let bgp = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_transitd")).args(["bgp", command, "--config"]).arg(&config).output().unwrap()
    };
    let out = bgp("withdraw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [bgp] section"));
    let out = bgp("show");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no [bgp] section and announces nothing"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("protocol static transitd4"));
}

/// A new `withdraw_after_ms` is told to the running guard, not given to a new one (a new
/// guard withdraws everything for a moment, on every server of a fleet at once): told 60 s
/// where it started with 500 ms, the guard keeps announcing through a second of silence, and
/// a SIGHUP meant for transitd's reload does not end it.
#[test]
fn the_guard_takes_a_new_withdraw_after_without_a_restart() {
    use std::io::Write as _;
    use std::process::Stdio;
    let dir = scratch_dir("bgp-retime");
    let include = dir.join("transitd.conf");
    let mut guard = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["bgp", "guard", "--bird-socket"])
        .arg(dir.join("no-bird.ctl"))
        .arg("--bird-include")
        .arg(&include)
        .args(["--withdraw-after-ms", "500"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut told = guard.stdin.take().unwrap();
    writeln!(told, "announce 192.0.2.1/32").unwrap();
    writeln!(told, "withdraw-after 60000").unwrap();
    let announced = || std::fs::read_to_string(&include).is_ok_and(|t| t.contains("192.0.2.1/32"));
    let started = std::time::Instant::now();
    while !announced() {
        assert!(started.elapsed().as_secs() < 10, "the guard never wrote {}", include.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A reload's SIGHUP sent to every transitd by name reaches the guard too: it stays.
    let hup = Command::new("kill").args(["-HUP", &guard.id().to_string()]).status().unwrap();
    assert!(hup.success());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let still = announced();
    let alive = guard.try_wait().unwrap().is_none();
    drop(told);
    let _ = guard.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(alive, "a SIGHUP ended the guard");
    assert!(still, "withdrawn after 500 ms of silence: the new withdraw_after was not taken");
}

/// Two guards on one BIRD include file would undo each other's announcements: the second is
/// refused while the first runs, naming the file, and taken once the first has gone.
#[test]
fn a_second_guard_on_one_include_file_is_refused() {
    use std::io::Write as _;
    use std::process::Stdio;
    let dir = scratch_dir("bgp-guards");
    let include = dir.join("transitd.conf");
    let guard = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_transitd"));
        // No BIRD listens there: the guard writes the file and retries BIRD, which is all
        // this needs.
        c.args(["bgp", "guard", "--bird-socket"]).arg(dir.join("no-bird.ctl")).arg("--bird-include").arg(&include);
        c.args(["--withdraw-after-ms", "60000"]).stdin(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    let mut first = guard().spawn().unwrap();
    let mut told = first.stdin.take().unwrap();
    writeln!(told, "announce 192.0.2.1/32").unwrap();
    // The first holds the lock once its include file is written.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&include).is_ok_and(|t| t.contains("192.0.2.1/32")) {
        assert!(started.elapsed().as_secs() < 10, "the first guard never wrote {}", include.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = guard().output().unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(said.contains("another transitd's BGP guard keeps this BIRD include file"), "{said}");
    assert!(said.contains(&include.display().to_string()), "{said}");
    assert!(std::fs::read_to_string(&include).unwrap().contains("192.0.2.1/32"), "the refused guard touched nothing");

    drop(told); // the first withdraws and exits
    assert!(first.wait().unwrap().success());
    assert!(!std::fs::read_to_string(&include).unwrap().contains("192.0.2.1/32"), "withdrawn on exit");
    let mut third = guard().spawn().unwrap();
    drop(third.stdin.take());
    let third = third.wait_with_output().unwrap();
    assert!(third.status.success(), "the lock is free again: {}", String::from_utf8_lossy(&third.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The unit's stop backstop withdraws even when the file on disk is one the running edge
/// refused (a rule that does not compile): it needs only `[bgp]`'s paths.
#[test]
fn withdraw_needs_only_the_bgp_section_to_be_sound() {
    let dir = scratch_dir("bgp-withdraw");
    let include = dir.join("transitd.conf");
    std::fs::write(&include, "# announced: 192.0.2.1/32\n").unwrap();
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nbird_socket = \"{}\"\nbird_include = \"{}\"\n\
             [[dos.rule]]\nmatch = \"tcp.port ==\"\naction = \"drop\"\n",
            dir.join("no-bird.ctl").display(),
            include.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["bgp", "withdraw", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    // No BIRD listens: the file is written, telling BIRD fails (and says so).
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no-bird.ctl"), "{said}");
    assert!(!said.contains("tcp.port"), "the rules were not read: {said}");
    assert!(!std::fs::read_to_string(&include).unwrap().contains("192.0.2.1/32"), "withdrawn in the file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A withdrawal does not depend on the rest of BIRD's configuration: with an operator's
/// unapplied edit that BIRD refuses, `configure` would keep the old routes, so both
/// protocols are disabled instead. Once BIRD takes its configuration again, announcing
/// enables them. Checked against a running BIRD 2 (`birdc show route`).
#[test]
fn a_withdrawal_holds_even_when_bird_refuses_its_configuration() {
    use transitd::bgp::bird::{Applied, apply};
    let dir = scratch_dir("bgp-refused");
    let (conf, include, socket) = (dir.join("bird.conf"), dir.join("routes.conf"), dir.join("bird.ctl"));
    let sound = format!("router id 10.0.0.1;\nprotocol device {{}}\ninclude \"{}\";\n", include.display());
    std::fs::write(&conf, &sound).unwrap();
    let routes = Announcements(["203.0.113.0/24", "2001:db8::/32"].iter().map(|p| p.parse().unwrap()).collect());
    transitd::bgp::bird::write_include(&include, &routes).unwrap();
    let mut bird = Command::new("bird")
        .arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("BIRD 2 (apt-get install bird2, or run .ci/run)");
    let show = || bird_routes(&socket);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !show().contains("203.0.113.0/24") {
        assert!(std::time::Instant::now() < deadline, "BIRD did not start: {}", show());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    std::fs::write(&conf, format!("{sound}garbage\n")).unwrap();
    // Taking one prefix away fails closed too: every route goes, not none.
    let v6_only = Announcements(["2001:db8::/32".parse().unwrap()].into_iter().collect());
    let partly = apply(&include, &socket, &v6_only, true);
    let partly_gone = show();
    // An announcement alone waits for a configuration BIRD takes.
    let more = Announcements(routes.0.iter().copied().chain(["198.51.100.0/24".parse().unwrap()]).collect());
    let added = apply(&include, &socket, &more, false);
    let withdrawn = apply(&include, &socket, &Announcements::none(), true);
    let gone = show();
    // The edit fixed: an announcement configures, which enables the protocols again.
    std::fs::write(&conf, &sound).unwrap();
    let announced = apply(&include, &socket, &routes, false);
    // BIRD takes the routes up within moments; looked for until then (a fixed 300 ms was a
    // guess on a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut back = show();
    while !back.contains("203.0.113.0/24") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        back = show();
    }
    let _ = (bird.kill(), bird.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(&partly, Ok(Applied::Disabled(why)) if why.contains("syntax error")), "{partly:?}");
    assert!(!partly_gone.contains("203.0.113.0/24") && !partly_gone.contains("2001:db8::/32"), "{partly_gone}");
    assert!(added.is_err(), "{added:?}");
    assert!(matches!(&withdrawn, Ok(Applied::Disabled(why)) if why.contains("syntax error")), "{withdrawn:?}");
    assert!(!gone.contains("203.0.113.0/24") && !gone.contains("2001:db8::/32"), "{gone}");
    assert_eq!(announced.unwrap(), Applied::Configured);
    assert!(back.contains("203.0.113.0/24") && back.contains("2001:db8::/32"), "{back}");
}

/// A `transitd bgp guard` for `include` and BIRD's `socket` (withdraw_after a minute: no
/// silence withdraws during a test), its stdin, and what it says on stdout line by line:
/// each within 15 s, else "(nothing)".
fn guard_for(
    socket: &std::path::Path,
    include: &std::path::Path,
) -> (std::process::Child, std::process::ChildStdin, impl Fn() -> String) {
    let (guard, told, next, _) = guard_saying(socket, include);
    (guard, told, next)
}

/// [`guard_for`], and what the guard says on stderr, line by line as stdout's. The readers
/// borrow neither path (`use<>`), so a caller may keep them beside the paths.
fn guard_saying(
    socket: &std::path::Path,
    include: &std::path::Path,
) -> (std::process::Child, std::process::ChildStdin, impl Fn() -> String + use<>, impl Fn() -> String + use<>) {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let mut guard = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["bgp", "guard", "--bird-socket"])
        .arg(socket)
        .arg("--bird-include")
        .arg(include)
        .args(["--withdraw-after-ms", "60000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let told = guard.stdin.take().unwrap();
    let reader = |stream: Box<dyn std::io::Read + Send>| {
        let lines = std::io::BufReader::new(stream).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        move || rx.recv_timeout(std::time::Duration::from_secs(15)).unwrap_or_else(|_| "(nothing)".into())
    };
    let out = reader(Box::new(guard.stdout.take().unwrap()));
    let err = reader(Box::new(guard.stderr.take().unwrap()));
    (guard, told, out, err)
}

/// A real BIRD with configuration `conf`, its control socket at `socket`.
fn bird_with(conf: &std::path::Path, socket: &std::path::Path) -> std::process::Child {
    use std::process::Stdio;
    Command::new("bird")
        .arg("-f")
        .arg("-c")
        .arg(conf)
        .arg("-s")
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("BIRD 2 (apt-get install bird2, or run .ci/run)")
}

/// [`bird_with`], once its control socket is there (or ten seconds have passed).
fn listening_bird(conf: &std::path::Path, socket: &std::path::Path) -> std::process::Child {
    let bird = bird_with(conf, socket);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    bird
}

/// The routes BIRD at `socket` holds (`birdc show route`).
fn bird_routes(socket: &std::path::Path) -> String {
    let out = Command::new("birdc").arg("-s").arg(socket).args(["show", "route"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A BIRD configuration that includes `include`.
fn including(include: &std::path::Path) -> String {
    format!("router id 10.0.0.1;\nprotocol device {{}}\ninclude \"{}\";\n", include.display())
}

/// A running BIRD 2 and its guard, as [`guarded_bird`] leaves them.
struct GuardedBird {
    dir: std::path::PathBuf,
    conf: std::path::PathBuf,
    include: std::path::PathBuf,
    socket: std::path::PathBuf,
    bird: std::process::Child,
    guard: std::process::Child,
    told: std::process::ChildStdin,
    /// What the guard says on stdout and on stderr, line by line, as [`guard_saying`]'s.
    next: Box<dyn Fn() -> String>,
    said: Box<dyn Fn() -> String>,
    /// What the guard said of its first announcement, 203.0.113.0/24.
    first: String,
}

/// In a directory of its own for test `name`: a [`listening_bird`] whose configuration
/// includes the (empty) file of a [`guard_saying`], which has been told to announce
/// 203.0.113.0/24 and has said how that went.
fn guarded_bird(name: &str) -> GuardedBird {
    use std::io::Write as _;
    let dir = scratch_dir(&format!("bgp-{name}"));
    let (conf, include, socket) = (dir.join("bird.conf"), dir.join("routes.conf"), dir.join("bird.ctl"));
    std::fs::write(&conf, including(&include)).unwrap();
    std::fs::write(&include, "").unwrap();
    let bird = listening_bird(&conf, &socket);
    let (guard, mut told, next, said) = guard_saying(&socket, &include);
    writeln!(told, "announce 203.0.113.0/24").unwrap();
    let first = next();
    GuardedBird { dir, conf, include, socket, bird, guard, told, next: Box::new(next), said: Box::new(said), first }
}

/// The guard says whether BIRD took what it was told, for the metrics: with no BIRD at its
/// socket, `bird failing`; once a real BIRD listens there and takes the configuration,
/// `bird ok`.
#[test]
fn the_guard_says_whether_bird_took_the_announcement() {
    use std::io::Write as _;
    let dir = scratch_dir("bgp-sync");
    let (conf, include, socket) = (dir.join("bird.conf"), dir.join("routes.conf"), dir.join("bird.ctl"));
    let (mut guard, mut told, next) = guard_for(&socket, &include);
    writeln!(told, "announce 203.0.113.0/24").unwrap();
    let first = next();

    std::fs::write(&conf, including(&include)).unwrap();
    let mut bird = bird_with(&conf, &socket);
    // The guard tries the announcement again every second (withdraw_after is a minute: no
    // silence withdraws meanwhile, and its input stays open, so no last word says it).
    let second = next();
    let routes = std::fs::read_to_string(&include).unwrap_or_default();
    // BIRD stopping is seen too: the guard looks at it every few seconds.
    let _ = (bird.kill(), bird.wait());
    let third = next();
    let _ = (guard.kill(), guard.wait());
    drop(told);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((first.as_str(), second.as_str(), third.as_str()), ("bird failing", "bird ok", "bird failing"));
    assert!(routes.contains("203.0.113.0/24"), "{routes}");
}

/// A BIRD whose configuration does not include the file takes every `configure` and
/// announces none of it: the guard says `bird failing` (it said `bird ok`, and the metric
/// read in sync while nothing was announced), and `bird ok` once BIRD includes the file.
#[test]
fn a_bird_that_does_not_include_the_file_is_not_in_sync() {
    use std::io::Write as _;
    let dir = scratch_dir("bgp-unincluded");
    let (conf, include, socket) = (dir.join("bird.conf"), dir.join("routes.conf"), dir.join("bird.ctl"));
    std::fs::write(&conf, "router id 10.0.0.1;\nprotocol device {}\n").unwrap();
    let mut bird = listening_bird(&conf, &socket);
    let (mut guard, mut told, next) = guard_for(&socket, &include);
    writeln!(told, "announce 203.0.113.0/24").unwrap();
    let first = next();
    // The operator includes the file and has BIRD read its configuration again.
    std::fs::write(&conf, including(&include)).unwrap();
    let configured = Command::new("birdc").arg("-s").arg(&socket).arg("configure").output().unwrap();
    let second = next();
    let _ = (guard.kill(), guard.wait());
    let _ = (bird.kill(), bird.wait());
    drop(told);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(configured.status.success(), "{}", String::from_utf8_lossy(&configured.stdout));
    assert_eq!((first.as_str(), second.as_str()), ("bird failing", "bird ok"));
}

/// A BIRD that stops answering for a while (stopped, here; busy, or restarted, in the field)
/// announced what it was told and still does: asked again once it answers, the same routes
/// are no withdrawal, so an operator's unapplied edit that BIRD refuses keeps them announced
/// (the guard had forgotten what BIRD announced, and disabled every route). Checked against a
/// running BIRD 2 (`birdc show route`).
#[test]
fn a_bird_that_was_silent_for_a_while_keeps_its_routes_through_a_refused_configuration() {
    let GuardedBird { dir, conf, include, socket, mut bird, mut guard, told, next, said, first } =
        guarded_bird("silent");
    let show = || bird_routes(&socket);
    let announced = show();

    // BIRD stops answering: the guard's look (every 5 s, each exchange up to 10 s) fails.
    let stop = |signal: &str| Command::new("kill").args([signal, &bird.id().to_string()]).status().unwrap();
    stop("-STOP");
    let second = (0..3).map(|_| next()).find(|l| l != "(nothing)").unwrap_or_default();
    // Meanwhile an operator edits BIRD's configuration and has not applied it yet.
    std::fs::write(&conf, format!("{}garbage\n", including(&include))).unwrap();
    stop("-CONT");
    // The guard tells BIRD again, which refuses its configuration.
    let refused = (0..10).map(|_| said()).find(|l| l.contains("BIRD refused") || l == "(nothing)").unwrap_or_default();
    let after = show();
    let _ = (guard.kill(), guard.wait());
    let _ = (bird.kill(), bird.wait());
    drop(told);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((first.as_str(), second.as_str()), ("bird ok", "bird failing"));
    assert!(announced.contains("203.0.113.0/24"), "{announced}");
    assert!(refused.contains("BIRD refused the configuration"), "{refused}");
    assert!(after.contains("203.0.113.0/24"), "the same routes were withdrawn: {refused}\n{after}");
}

/// transitd tells its guard it stops it (transitd stops, or a reload drops `[bgp]`) before
/// it closes the pipe: the guard withdraws, says why, and exits with its input still open.
/// It said "transitd exited", as after a kill, and an operator reading the log after a
/// reload took transitd for dead. Checked against a running BIRD 2.
#[test]
fn a_guard_told_to_stop_withdraws_and_says_why() {
    use std::io::Write as _;
    let GuardedBird { dir, socket, mut bird, mut guard, mut told, said, first, .. } = guarded_bird("told");
    let announced = bird_routes(&socket);
    writeln!(told, "stop").unwrap();
    let mut lines = Vec::new();
    while !lines.last().is_some_and(|l: &String| l.contains("withdrew every prefix") || l == "(nothing)") {
        lines.push(said());
    }
    let exited = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        guard.try_wait().unwrap().is_some()
    });
    let after = bird_routes(&socket);
    drop(told);
    let _ = (guard.kill(), guard.wait());
    let _ = (bird.kill(), bird.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first, "bird ok");
    assert!(announced.contains("203.0.113.0/24"), "{announced}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("transitd bgp guard: withdrew every prefix (transitd stopped the guard)"),
        "{lines:?}"
    );
    assert!(exited, "the guard ran on with its input open");
    assert!(!after.contains("203.0.113.0/24"), "still announced: {after}");
}

/// systemd's watchdog sends SIGABRT to every process of the unit: the guard outlives it and
/// withdraws once transitd (its input) is gone, where it died at once and left the routes
/// announced. Checked against a running BIRD 2.
#[test]
fn the_guard_withdraws_after_a_watchdogs_abort() {
    let GuardedBird { dir, socket, mut bird, mut guard, told, first, .. } = guarded_bird("abort");
    let show = || bird_routes(&socket);
    let announced = show();
    for signal in ["-ABRT", "-QUIT"] {
        Command::new("kill").args([signal, &guard.id().to_string()]).status().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let alive = guard.try_wait().unwrap().is_none();
    drop(told); // transitd gone
    let status = guard.wait().unwrap();
    let after = show();
    let _ = (bird.kill(), bird.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first, "bird ok");
    assert!(announced.contains("203.0.113.0/24"), "{announced}");
    assert!(alive, "the guard died of the signal: {status:?}");
    assert!(!after.contains("203.0.113.0/24"), "still announced: {after}");
}

/// A BIRD that answers nothing (stopped here; busy, in the field) when transitd goes is
/// withdrawn from once it answers: the guard gave up after one exchange (10 s) and its last
/// word's 5 s, and exited; BIRD, never reconfigured, went on announcing the dead server's
/// prefixes for good. Checked against a running BIRD 2.
#[test]
fn the_guard_withdraws_from_a_bird_that_was_silent_when_transitd_went() {
    let GuardedBird { dir, socket, mut bird, mut guard, told, first, .. } = guarded_bird("stalled");
    let announced = bird_routes(&socket);
    let signal = |signal: &str| Command::new("kill").args([signal, &bird.id().to_string()]).status().unwrap();
    signal("-STOP");
    drop(told); // transitd gone while BIRD answers nothing
    // Longer than the guard's first try and its last word's deadline together.
    std::thread::sleep(std::time::Duration::from_secs(16));
    signal("-CONT");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut after = bird_routes(&socket);
    while after.contains("203.0.113.0/24") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        after = bird_routes(&socket);
    }
    let _ = (guard.kill(), guard.wait());
    let _ = (bird.kill(), bird.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first, "bird ok");
    assert!(announced.contains("203.0.113.0/24"), "{announced}");
    assert!(!after.contains("203.0.113.0/24"), "still announced once BIRD answered: {after}");
}

/// What BIRD at `socket` holds of 203.0.113.0/24, attributes and all (`birdc show route all`).
fn bird_route_all(socket: &std::path::Path) -> String {
    let out = Command::new("birdc").arg("-s").arg(socket).args(["show", "route", "203.0.113.0/24", "all"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Polls `cond` every 50 ms for up to `limit`: when it first held, from `since`.
fn held_within(
    since: std::time::Instant,
    limit: std::time::Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<std::time::Duration> {
    while since.elapsed() < limit {
        if cond() {
            return Some(since.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// The community RFC 8326 names GRACEFUL_SHUTDOWN (65535:0), as `birdc` shows it on a route.
const GRACEFUL_SHUTDOWN: &str = "BGP.community: (65535,0)";

/// systemd stops the unit with SIGTERM to each of its processes, the guard too: told a drain
/// of 3 s (`graceful-shutdown 3000`, as transitd tells it graceful_shutdown_ms), the guard
/// first announces what it announces again with GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326), and
/// withdraws only once the drain is over (transitd, not there to say `stop` here, is waited
/// for two seconds more). The oracle is BIRD's own table: `birdc show route all` shows the
/// community on the route, then no route. The guard withdrew at once, and peers dropped the
/// traffic they sent on meanwhile until they converged.
#[test]
fn on_sigterm_the_guard_announces_graceful_shutdown_before_it_withdraws() {
    use std::io::Write as _;
    let GuardedBird { dir, socket, mut bird, mut guard, mut told, first, .. } = guarded_bird("gshut-term");
    writeln!(told, "graceful-shutdown 3000").unwrap();
    let plain = bird_route_all(&socket);
    // The line read before the signal is looked at (the guard reads its input on a thread).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let signalled = std::time::Instant::now();
    Command::new("kill").args(["-TERM", &guard.id().to_string()]).status().unwrap();
    let limit = std::time::Duration::from_secs(15);
    let marked = held_within(signalled, limit, || bird_route_all(&socket).contains(GRACEFUL_SHUTDOWN));
    let gone = held_within(signalled, limit, || !bird_route_all(&socket).contains("203.0.113.0/24"));
    let exited = held_within(signalled, limit, || guard.try_wait().unwrap().is_some());
    drop(told);
    let _ = (guard.kill(), guard.wait());
    let _ = (bird.kill(), bird.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first, "bird ok");
    assert!(plain.contains("203.0.113.0/24") && !plain.contains(GRACEFUL_SHUTDOWN), "{plain}");
    let marked = marked.expect("the route never carried GRACEFUL_SHUTDOWN");
    let gone = gone.expect("never withdrawn");
    assert!(marked < std::time::Duration::from_secs(2), "marked {marked:?} after the signal");
    assert!(gone >= std::time::Duration::from_secs(3), "withdrawn {gone:?} after the signal, within its drain");
    assert!(exited.is_some(), "the guard ran on after its withdrawal");
}

/// transitd's own SIGTERM (a stop by its pid, the guard not signalled) reaches the guard as
/// `drain`: it announces with GRACEFUL_SHUTDOWN while transitd goes on forwarding, and
/// withdraws when transitd says `stop` at the end of its drain, not at the guard's own
/// deadline (30 s here). Checked against a running BIRD 2.
#[test]
fn a_guard_told_to_drain_marks_its_routes_until_told_to_stop() {
    use std::io::Write as _;
    let GuardedBird { dir, socket, mut bird, mut guard, mut told, first, .. } = guarded_bird("gshut-told");
    writeln!(told, "graceful-shutdown 30000").unwrap();
    writeln!(told, "drain").unwrap();
    let limit = std::time::Duration::from_secs(10);
    let marked = held_within(std::time::Instant::now(), limit, || bird_route_all(&socket).contains(GRACEFUL_SHUTDOWN));
    // transitd goes on telling it what to announce while it drains.
    writeln!(told, "announce 203.0.113.0/24").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let still = bird_route_all(&socket);
    let stopped = std::time::Instant::now();
    writeln!(told, "stop").unwrap();
    let gone = held_within(stopped, limit, || !bird_route_all(&socket).contains("203.0.113.0/24"));
    let exited = held_within(stopped, limit, || guard.try_wait().unwrap().is_some());
    drop(told);
    let _ = (guard.kill(), guard.wait());
    let _ = (bird.kill(), bird.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first, "bird ok");
    assert!(marked.is_some(), "the route never carried GRACEFUL_SHUTDOWN");
    assert!(still.contains("203.0.113.0/24") && still.contains(GRACEFUL_SHUTDOWN), "{still}");
    assert!(gone.is_some_and(|d| d < std::time::Duration::from_secs(5)), "withdrawn {gone:?} after `stop`");
    assert!(exited.is_some(), "the guard ran on after `stop`");
}
