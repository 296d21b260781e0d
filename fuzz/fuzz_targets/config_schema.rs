//! Configurations built from the schema with extreme values: every section, every key, with
//! numbers at and past their bounds (0, 1, the type's maximum, negative, larger than TOML
//! holds), names that are empty, long, quoted or not ASCII, addresses of every family and
//! length, lists from empty to large, rules with large sets and `$list`s, `[bgp]`, `[ipfix]`,
//! `[tcp_protection]` and `[[list]]` too. Parsing and compiling never
//! panic; a configuration is a snapshot that holds exactly the customers and tunnels written,
//! or errors that each point inside the text.
#![no_main]

use std::fmt::Write as _;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Num {
    Zero,
    One,
    Small(u8),
    Port(u16),
    Any(u32),
    I64Max,
    Negative(u8),
    /// Past TOML's integers.
    TooBig,
    Float,
}

impl Num {
    fn text(&self) -> String {
        match self {
            Num::Zero => "0".into(),
            Num::One => "1".into(),
            Num::Small(n) => n.to_string(),
            Num::Port(n) => n.to_string(),
            Num::Any(n) => n.to_string(),
            Num::I64Max => i64::MAX.to_string(),
            Num::Negative(n) => format!("-{n}"),
            Num::TooBig => "18446744073709551616".into(),
            Num::Float => "1.5".into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Plain(u8),
    Empty,
    Long(u8),
    Quote,
    Newline,
    Unicode,
    Dup,
}

impl Name {
    fn text(&self, i: usize) -> String {
        match self {
            Name::Plain(n) => format!("n{n}-{i}"),
            Name::Empty => String::new(),
            Name::Long(n) => "x".repeat(usize::from(*n) + 1),
            Name::Quote => "a\"b".into(),
            Name::Newline => "a\nb".into(),
            Name::Unicode => "café".into(),
            Name::Dup => "same".into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Addr {
    V4(u32, u8),
    V6(u64, u8),
    Host4(u32),
    Junk(u8),
}

impl Addr {
    fn prefix(&self) -> String {
        match self {
            Addr::V4(a, l) => {
                let len = u32::from(*l) % 34;
                let net = a & u32::MAX.checked_shl(32u32.saturating_sub(len)).unwrap_or(0);
                format!("{}/{len}", std::net::Ipv4Addr::from(net))
            }
            Addr::V6(a, l) => format!("{}/{}", std::net::Ipv6Addr::from(u128::from(*a) << 64), u32::from(*l) % 130),
            Addr::Host4(a) => format!("{}/24", std::net::Ipv4Addr::from(*a)),
            Addr::Junk(n) => ["", "1.2.3.4", "::/", "10.0.0.0/8/8", "x"][usize::from(*n) % 5].into(),
        }
    }

    fn host(&self) -> String {
        match self {
            Addr::V4(a, _) | Addr::Host4(a) => std::net::Ipv4Addr::from(*a).to_string(),
            Addr::V6(a, _) => std::net::Ipv6Addr::from(u128::from(*a)).to_string(),
            Addr::Junk(n) => ["", "300.1.1.1", "fe80::1%eth0", "x"][usize::from(*n) % 4].into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Expr {
    Simple(u8),
    Set {
        seed: u64,
        len: u16,
    },
    Nested(u8),
    Broken(u8),
    /// A `[[list]]`'s name (`l0`..`l3`, which lists may or may not be called), tested by an
    /// address field or a number field, under `not` or not.
    List {
        list: u8,
        numbers: bool,
        not: bool,
    },
}

impl Expr {
    fn text(&self) -> String {
        const SIMPLE: [&str; 6] = [
            "tcp.dstport == 80",
            "ip.src == 10.0.0.0/8 and udp",
            "not icmp",
            "ipv6.dst in {2001:db8::/32, 2001:db8:1::1}",
            "tcp.flags.syn == 1 and tcp.flags.ack == 0",
            "",
        ];
        match self {
            Expr::Simple(n) => SIMPLE[usize::from(*n) % SIMPLE.len()].into(),
            Expr::Set { seed, len } => {
                let mut x = *seed;
                let members: Vec<String> = (0..usize::from(*len) % 40_000)
                    .map(|i| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(i as u64 | 1);
                        std::net::Ipv4Addr::from((x >> 32) as u32).to_string()
                    })
                    .collect();
                format!("ip.src in {{{}}}", members.join(","))
            }
            Expr::Nested(n) => format!("{}tcp{}", "(".repeat(usize::from(*n)), ")".repeat(usize::from(*n))),
            Expr::Broken(n) => ["tcp.port in {80 443}", "foo", "(", "ip.src == 1.2.3.4/33", "tcp.port == 0x1ffff"]
                [usize::from(*n) % 5]
                .into(),
            Expr::List { list, numbers, not } => format!(
                "{}{} in $l{}",
                if *not { "not " } else { "" },
                if *numbers { "udp.srcport" } else { "ip.src" },
                list % 4
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Rule {
    name: Option<Name>,
    expr: Expr,
    action: u8,
    bucket: Option<Name>,
    monitor: bool,
}

#[derive(Arbitrary, Debug)]
struct TcpRule {
    name: Option<Name>,
    expr: Expr,
    mitigate: Option<bool>,
    syn_rate: Option<Num>,
    syn_burst: Option<Num>,
}

#[derive(Arbitrary, Debug)]
struct TcpProtection {
    /// `table_size`, the three timeouts, `challenge_rate`, `authenticated_for`, `grace_period`.
    settings: [Option<Num>; 7],
    rules: Vec<TcpRule>,
}

/// A path as `[bgp]` takes one: absolute or not, empty, the root, with a NUL.
#[derive(Arbitrary, Debug)]
enum PathText {
    Absolute(u8),
    Relative,
    Empty,
    Root,
    Nul,
}

impl PathText {
    fn text(&self) -> String {
        match self {
            PathText::Absolute(n) => format!("/run/transitd-fuzz/{n}.conf"),
            PathText::Relative => "bird.conf".into(),
            PathText::Empty => String::new(),
            PathText::Root => "/".into(),
            PathText::Nul => "/run/a\\u0000b".into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Bgp {
    socket: Option<PathText>,
    include: Option<PathText>,
    withdraw_after: Option<Num>,
    announce_after: Option<Num>,
    withdrawn_grace: Option<Num>,
    without_tunnels: Option<bool>,
}

#[derive(Arbitrary, Debug)]
enum Collector {
    V4(u32, u16),
    V6(u64, u16),
    NoPort(u32),
    Junk(u8),
}

impl Collector {
    fn text(&self) -> String {
        match self {
            Collector::V4(a, p) => format!("{}:{p}", std::net::Ipv4Addr::from(*a)),
            Collector::V6(a, p) => format!("[{}]:{p}", std::net::Ipv6Addr::from(u128::from(*a))),
            Collector::NoPort(a) => std::net::Ipv4Addr::from(*a).to_string(),
            Collector::Junk(n) => ["", ":4739", "[::1]", "localhost:4739", "1.2.3.4:70000"][usize::from(*n) % 5].into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Ipfix {
    collector: Collector,
    /// `sample`, `observation_domain`, the two timeouts, `enterprise_number`,
    /// `template_refresh_s`, `max_message_size`.
    settings: [Option<Num>; 7],
}

#[derive(Arbitrary, Debug)]
enum Item {
    Prefix(Addr),
    Host(Addr),
    Number(Num),
    Range(Num, Num),
}

impl Item {
    fn text(&self) -> String {
        match self {
            Item::Prefix(a) => a.prefix(),
            Item::Host(a) => a.host(),
            Item::Number(n) => n.text(),
            Item::Range(a, b) => format!("{}..{}", a.text(), b.text()),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct List {
    /// `l0`..`l3`, the names rules test; or any name.
    name: Result<u8, Name>,
    items: Vec<Item>,
    /// A file that is not there.
    missing_file: bool,
}

#[derive(Arbitrary, Debug)]
struct Tunnel {
    name: Name,
    remote: Addr,
    key: Option<Num>,
    mtu: Option<Num>,
    checksum: bool,
    interface: Option<Addr>,
    mss: Option<Num>,
}

#[derive(Arbitrary, Debug)]
struct Route {
    prefix: Addr,
    tunnel: u8,
    priority: Option<Num>,
    weight: Option<Num>,
}

#[derive(Arbitrary, Debug)]
struct Customer {
    name: Name,
    prefixes: Vec<Addr>,
    tunnels: Vec<Tunnel>,
    routes: Vec<Route>,
    firewall: Option<(u8, Vec<Rule>)>,
    egress: Option<(u8, Vec<Rule>)>,
    dos: Vec<Rule>,
    tcp_protection: Vec<TcpRule>,
}

#[derive(Arbitrary, Debug)]
struct Sanity {
    land: bool,
    flags: bool,
    extension_headers: Num,
    bogons: bool,
    list: Option<Vec<Addr>>,
}

#[derive(Arbitrary, Debug)]
struct SoftUnicast {
    this: Name,
    slice: Option<Num>,
    reserved: Option<Num>,
    key: Option<Num>,
    dcs: Vec<(Name, Addr)>,
    servers: Vec<(Name, u8, Addr)>,
    egress: Vec<(Addr, u8, Name)>,
}

#[derive(Arbitrary, Debug)]
struct Config {
    anycast: Addr,
    anycast_v6: Option<Addr>,
    frame_size: Option<Num>,
    unmatched: Option<u8>,
    icmp: Option<(Num, Num)>,
    health: Option<(Num, Num, Num, Num)>,
    sanity: Option<Sanity>,
    table_size: Option<Num>,
    buckets: Vec<(Name, u8, Num, Option<Num>)>,
    dos: Vec<Rule>,
    soft_unicast: Option<SoftUnicast>,
    bgp: Option<Bgp>,
    ipfix: Option<Ipfix>,
    tcp_protection: Option<TcpProtection>,
    lists: Vec<List>,
    customers: Vec<Customer>,
}

fn quoted(s: &str) -> String {
    // TOML basic string: escape what must be.
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn rules(out: &mut String, table: &str, rules: &[Rule]) {
    for (i, r) in rules.iter().take(200).enumerate() {
        let _ = writeln!(out, "[[{table}]]");
        if let Some(n) = &r.name {
            let _ = writeln!(out, "name = {}", quoted(&n.text(i)));
        }
        let _ = writeln!(out, "match = {}", quoted(&r.expr.text()));
        let _ =
            writeln!(out, "action = {}", quoted(["accept", "drop", "rate-limit", "reject"][usize::from(r.action) % 4]));
        if let Some(b) = &r.bucket {
            let _ = writeln!(out, "bucket = {}", quoted(&b.text(0)));
        }
        if r.monitor {
            let _ = writeln!(out, "mode = \"monitor\"");
        }
    }
}

fn tcp_rules(out: &mut String, table: &str, rules: &[TcpRule]) {
    for (i, r) in rules.iter().take(100).enumerate() {
        let _ = writeln!(out, "[[{table}]]\nmatch = {}", quoted(&r.expr.text()));
        if let Some(n) = &r.name {
            let _ = writeln!(out, "name = {}", quoted(&n.text(i)));
        }
        if let Some(m) = r.mitigate {
            let _ = writeln!(out, "mode = {}", quoted(if m { "mitigate" } else { "monitor" }));
        }
        for (k, v) in [("syn_rate", &r.syn_rate), ("syn_burst", &r.syn_burst)] {
            if let Some(v) = v {
                let _ = writeln!(out, "{k} = {}", v.text());
            }
        }
    }
}

/// `key = value` for each setting given.
fn settings<'a>(out: &mut String, keys: &[&str], values: impl IntoIterator<Item = &'a Option<Num>>) {
    for (k, v) in keys.iter().zip(values) {
        if let Some(v) = v {
            let _ = writeln!(out, "{k} = {}", v.text());
        }
    }
}

fn render(c: &Config) -> (String, usize, usize) {
    let mut out = String::new();
    let _ = writeln!(out, "[server]\nanycast = {}", quoted(&c.anycast.host()));
    if let Some(a) = &c.anycast_v6 {
        let _ = writeln!(out, "anycast_v6 = {}", quoted(&a.host()));
    }
    if let Some(n) = &c.frame_size {
        let _ = writeln!(out, "frame_size = {}", n.text());
    }
    if let Some(u) = c.unmatched {
        let _ = writeln!(out, "unmatched = {}", quoted(["pass", "drop", "maybe"][usize::from(u) % 3]));
    }
    if let Some((rate, burst)) = &c.icmp {
        let _ = writeln!(out, "icmp_rate = {}\nicmp_burst = {}", rate.text(), burst.text());
    }
    if let Some((i, t, d, u)) = &c.health {
        let _ = writeln!(
            out,
            "[health]\ninterval_ms = {}\ntimeout_ms = {}\ndown_after = {}\nup_after = {}",
            i.text(),
            t.text(),
            d.text(),
            u.text()
        );
    }
    if let Some(Bgp { socket, include, withdraw_after, announce_after, withdrawn_grace, without_tunnels }) = &c.bgp {
        let _ = writeln!(out, "[bgp]");
        for (k, v) in [("bird_socket", socket), ("bird_include", include)] {
            if let Some(v) = v {
                let _ = writeln!(out, "{k} = {}", quoted(&v.text()));
            }
        }
        let keys = ["withdraw_after_ms", "announce_after_ms", "withdrawn_grace_ms"];
        settings(&mut out, &keys, [withdraw_after, announce_after, withdrawn_grace]);
        if let Some(w) = without_tunnels {
            let _ = writeln!(out, "withdraw_customers_without_tunnels = {w}");
        }
    }
    if let Some(Ipfix { collector, settings: values }) = &c.ipfix {
        let _ = writeln!(out, "[ipfix]\ncollector = {}", quoted(&collector.text()));
        let keys = [
            "sample",
            "observation_domain",
            "active_timeout_s",
            "idle_timeout_s",
            "enterprise_number",
            "template_refresh_s",
            "max_message_size",
        ];
        settings(&mut out, &keys, values);
    }
    if let Some(TcpProtection { settings: values, rules }) = &c.tcp_protection {
        let _ = writeln!(out, "[tcp_protection]");
        let keys = [
            "table_size",
            "embryonic_timeout",
            "idle_timeout",
            "closing_timeout",
            "challenge_rate",
            "authenticated_for",
            "grace_period",
        ];
        settings(&mut out, &keys, values);
        tcp_rules(&mut out, "tcp_protection.rule", rules);
    }
    for (i, list) in c.lists.iter().take(20).enumerate() {
        let name = match &list.name {
            Ok(n) => format!("l{}", n % 4),
            Err(n) => n.text(i),
        };
        let items: Vec<String> = list.items.iter().take(2000).map(|m| quoted(&m.text())).collect();
        let _ = writeln!(out, "[[list]]\nname = {}\nitems = [{}]", quoted(&name), items.join(", "));
        if list.missing_file {
            let _ = writeln!(out, "file = \"/nonexistent/transitd-fuzz-list\"");
        }
    }
    let _ = writeln!(out, "[dos]");
    if let Some(t) = &c.table_size {
        let _ = writeln!(out, "table_size = {}", t.text());
    }
    if let Some(Sanity { land, flags, extension_headers: ext, bogons, list }) = &c.sanity {
        let _ = writeln!(
            out,
            "[dos.sanity]\nland = {land}\ntcp_flags = {flags}\nmax_ipv6_extension_headers = {}\nbogons = {bogons}",
            ext.text()
        );
        if let Some(list) = list {
            let items: Vec<String> = list.iter().take(1000).map(|a| quoted(&a.prefix())).collect();
            let _ = writeln!(out, "bogon_sources = [{}]", items.join(", "));
        }
    }
    for (i, (name, key, rate, burst)) in c.buckets.iter().take(300).enumerate() {
        let _ = writeln!(
            out,
            "[[dos.bucket]]\nname = {}\nkey = {}\nrate = {}",
            quoted(&name.text(i)),
            quoted(["destination", "source", "flow", "rule", "port"][usize::from(*key) % 5]),
            rate.text()
        );
        if let Some(b) = burst {
            let _ = writeln!(out, "burst = {}", b.text());
        }
    }
    rules(&mut out, "dos.rule", &c.dos);
    if let Some(SoftUnicast { this, slice, reserved, key, dcs, servers, egress }) = &c.soft_unicast {
        let _ = writeln!(out, "[soft_unicast]\nthis_server = {}", quoted(&this.text(0)));
        for (k, v) in [("slice_size", slice), ("reserved_ports", reserved), ("backbone_key", key)] {
            if let Some(v) = v {
                let _ = writeln!(out, "{k} = {}", v.text());
            }
        }
        for (i, (n, a)) in dcs.iter().take(50).enumerate() {
            let _ = writeln!(
                out,
                "[[soft_unicast.data_centre]]\nname = {}\nbackbone = {}",
                quoted(&n.text(i)),
                quoted(&a.host())
            );
        }
        for (i, (n, dc, a)) in servers.iter().take(100).enumerate() {
            let dc =
                dcs.get(usize::from(*dc) % dcs.len().max(1)).map_or(String::new(), |(n, _)| n.text(usize::from(*dc)));
            let _ = writeln!(
                out,
                "[[soft_unicast.server]]\nname = {}\ndata_centre = {}\nbackbone = {}",
                quoted(&n.text(i)),
                quoted(&dc),
                quoted(&a.host())
            );
        }
        for (p, dc, country) in egress.iter().take(50) {
            let dc =
                dcs.get(usize::from(*dc) % dcs.len().max(1)).map_or(String::new(), |(n, _)| n.text(usize::from(*dc)));
            let _ = writeln!(
                out,
                "[[soft_unicast.egress]]\nprefix = {}\ndata_centre = {}\ncountry = {}",
                quoted(&p.prefix()),
                quoted(&dc),
                quoted(&country.text(0))
            );
        }
    }
    let mut tunnels = 0;
    let customers = c.customers.len().min(200);
    for (ci, cust) in c.customers.iter().take(200).enumerate() {
        let prefixes: Vec<String> = cust.prefixes.iter().take(500).map(|a| quoted(&a.prefix())).collect();
        let _ =
            writeln!(out, "[[customer]]\nname = {}\nprefixes = [{}]", quoted(&cust.name.text(ci)), prefixes.join(", "));
        for (ti, t) in cust.tunnels.iter().take(50).enumerate() {
            tunnels += 1;
            let _ = writeln!(
                out,
                "[[customer.tunnel]]\nname = {}\nremote = {}\nchecksum = {}",
                quoted(&t.name.text(ci * 100 + ti)),
                quoted(&t.remote.host()),
                t.checksum
            );
            for (k, v) in [("key", &t.key), ("mtu", &t.mtu), ("mss", &t.mss)] {
                if let Some(v) = v {
                    let _ = writeln!(out, "{k} = {}", v.text());
                }
            }
            if let Some(i) = &t.interface {
                let _ = writeln!(out, "interface = {}", quoted(&i.prefix()));
            }
        }
        for r in cust.routes.iter().take(200) {
            let tunnel = cust
                .tunnels
                .get(usize::from(r.tunnel) % cust.tunnels.len().max(1))
                .map_or(String::new(), |t| t.name.text(ci * 100 + usize::from(r.tunnel) % cust.tunnels.len().max(1)));
            let _ = writeln!(
                out,
                "[[customer.route]]\nprefix = {}\ntunnel = {}",
                quoted(&r.prefix.prefix()),
                quoted(&tunnel)
            );
            for (k, v) in [("priority", &r.priority), ("weight", &r.weight)] {
                if let Some(v) = v {
                    let _ = writeln!(out, "{k} = {}", v.text());
                }
            }
        }
        for (section, list) in [("firewall", &cust.firewall), ("egress", &cust.egress)] {
            if let Some((default, list)) = list {
                let _ = writeln!(
                    out,
                    "[customer.{section}]\ndefault = {}",
                    quoted(["accept", "drop", "rate-limit"][usize::from(*default) % 3])
                );
                rules(&mut out, &format!("customer.{section}.rule"), list);
            }
        }
        if !cust.dos.is_empty() {
            rules(&mut out, "customer.dos.rule", &cust.dos);
        }
        if !cust.tcp_protection.is_empty() {
            tcp_rules(&mut out, "customer.tcp_protection.rule", &cust.tcp_protection);
        }
    }
    (out, customers, tunnels)
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::arbitrary(&mut Unstructured::new(data)) else { return };
    let (text, customers, tunnels) = render(&config);
    let lines = text.lines().count().max(1);
    let loaded = match transitd::config::parse("fuzz.toml", &text) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                assert!((1..=lines + 1).contains(&e.at.line), "{e} outside 1..={lines}\n{text}");
            }
            return;
        }
    };
    match transitd::snapshot::Snapshot::build(&loaded) {
        Ok(snap) => {
            assert_eq!(snap.customers.len(), customers, "{text}");
            assert_eq!(snap.tunnels.len(), tunnels, "{text}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                // Line 0 names a whole file (a plan file that cannot be read).
                assert!(e.at.line <= lines + 1, "{e} past the end of {lines} lines");
            }
        }
    }
});
