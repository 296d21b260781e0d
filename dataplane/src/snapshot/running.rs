//! What `run` asks of a snapshot beyond a build, at start and at every reload: the checks on
//! its host (`Host`: a next hop, a source MAC, `--this-server` for a fleet's shared file), a
//! refused configuration's named files for the watch (`Refused`), and a new snapshot taking
//! over from the running one ([`Snapshot::take_over_from`]).

use std::path::Path;
use std::sync::Arc;

use super::{Builder, FileStamp, NextHop, Snapshot, Succession, Tunnel, customers};
use crate::config::{self, ConfigErrors, Loaded};

/// What `run` knows of its host that the configuration does not say.
#[derive(Clone, Debug, Default)]
pub struct Host {
    /// The interface's own MAC address could be read (else `[server] mac` is required).
    pub iface_mac_known: bool,
    /// `--this-server`: which soft-unicast server this host is, over `[soft_unicast]
    /// this_server`, for a fleet whose servers share one configuration (an etcd prefix).
    pub this_server: Option<String>,
    /// The configuration is a fleet's, shared by its servers (etcd): its `this_server` is
    /// some server's, so `[soft_unicast]` needs `--this-server`.
    pub shared: bool,
    /// The interface `run` serves (`--iface`), for what is said of it.
    pub iface: String,
    /// Its own addresses, as read just before the build: no customer prefix may hold one.
    pub iface_addresses: Vec<std::net::IpAddr>,
}

/// A configuration [`Snapshot::build_for_reload`] refused: why, and the files it named.
#[derive(Debug)]
pub struct Refused {
    /// Everything wrong with it.
    pub errors: ConfigErrors,
    /// The files it named besides the configuration, as [`Snapshot::inputs`] (none when its
    /// text did not parse: nothing was named).
    pub inputs: Vec<std::path::PathBuf>,
    /// Each input's [`stamp`](super::stamp) as the build found it just before reading it.
    pub input_stamps: Vec<Option<FileStamp>>,
}

impl From<ConfigErrors> for Refused {
    /// Refused before anything was built (the text did not parse): no file was named.
    fn from(errors: ConfigErrors) -> Refused {
        Refused { errors, inputs: Vec::new(), input_stamps: Vec::new() }
    }
}

impl Snapshot {
    /// Takes over from `old`, the snapshot this one replaces while running (once, on the
    /// supervisor's thread, before the workers see it): tunnel health carries over by name
    /// while the tunnel is probed as it was (a reload neither revives a dead tunnel nor
    /// loses the probes in flight; one moved to another router, or given another key or
    /// `interface`, starts afresh, as a new one: [`Tunnel::is_probed_as`]), and a learned
    /// path MTU while its outer addresses and headers stay the same;
    /// each customer whose TCP rules cover what they did keeps its lists' version unless one
    /// of the lists changed so that the rules cover more; and what of the workers' state
    /// carries over is worked out here once ([`Succession`]).
    pub fn take_over_from(&mut self, old: &Snapshot) {
        // Names first: the rest of the succession reads the TCP list versions carried below.
        let succession = Succession::names_only(old, self);
        self.health.inherit(&succession.same_router, &succession.probed_as_before, &old.health);
        // The count of downs by name alone: it is the series of the tunnel's name, moved to
        // another router or not.
        self.health.inherit_downs(&succession.tunnels, &old.health);
        // Another path says nothing of what the old one took; other headers (a key or a
        // checksum added) leave the inner packet less of it.
        let path = |t: &Tunnel| (t.gre.endpoints, t.gre.overhead());
        for (t, &was) in self.tunnels.iter().zip(&succession.tunnels) {
            if was.and_then(|o| old.tunnels.get(o)).is_some_and(|was| path(was) != path(t)) {
                self.health.forget_path_mtu(t.id);
            }
        }
        // Turned off, path MTU discovery leaves nothing held (an operator may turn it off
        // because forged errors came).
        if !self.path_mtu_discovery {
            self.health.forget_path_mtus();
        }
        // Each pair of lists compared once: the global rules' are every customer's.
        type Pair = (*const classifier::List, *const classifier::List, bool, bool);
        let mut compared: std::collections::HashMap<Pair, bool> = std::collections::HashMap::new();
        let mut widened_by = |use_: &classifier::ListUse, then: &Arc<classifier::List>, now: &Arc<classifier::List>| {
            let pair = (Arc::as_ptr(then), Arc::as_ptr(now), use_.members, use_.non_members);
            *compared.entry(pair).or_insert_with(|| !Arc::ptr_eq(now, then) && use_.widened_by(then, now))
        };
        for (c, &was) in self.customers.iter_mut().zip(&succession.customers) {
            // Customer names are unique, so this is the one customer of that name.
            let Some(was) = was.and_then(|o| old.customers.get(o)).filter(|was| was.tcp_coverage == c.tcp_coverage)
            else {
                continue;
            };
            let widened =
                c.tcp_lists.iter().zip(&was.tcp_lists).any(|((now, use_), (then, _))| widened_by(use_, then, now));
            if !widened {
                c.tcp_lists_version = was.tcp_lists_version;
            }
        }
        // Last: the TCP list versions just carried decide which connections stay tracked.
        self.succession = Some(succession.completed(old, self));
    }

    /// [`Snapshot::from_path`] for `run` ([`Snapshot::build_to_run`]).
    pub fn from_path_to_run(path: &Path, host: &Host) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build_to_run(&config::load(path)?, host)
    }

    /// [`Snapshot::build`] for `run` on `host`, which also needs a next hop, and a source MAC
    /// when the interface's own could not be read; either missing is an error at `[server]`,
    /// like every other. (Replay and `match` need neither.)
    pub fn build_to_run(loaded: &Loaded, host: &Host) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build_for_reload(loaded, host).map_err(|refused| refused.errors)
    }

    /// [`Snapshot::build_to_run`] for a reload: refused, it says which files the
    /// configuration named as well, so that `run` watches them (writing the list file that
    /// was missing or wrong tries the configuration again).
    pub fn build_for_reload(loaded: &Loaded, host: &Host) -> Result<Snapshot, Refused> {
        let mut b = Builder::new(&loaded.source);
        b.this_server = host.this_server.clone();
        let snapshot = b.snapshot(loaded);
        let server = loaded.file.server.span();
        // (One given but refused has been said where it is.)
        let given = loaded.file.server.get_ref();
        if snapshot.next_hop == NextHop::Unset && given.next_hop.is_none() && given.next_hop_mac.is_none() {
            b.err(&server, "[server] sets no next hop: `run` needs next_hop (an IP address) or next_hop_mac");
        }
        // One left out, as a shared configuration may, has been said by the build.
        if let Some(su) = loaded.file.soft_unicast.as_ref().filter(|_| host.shared && host.this_server.is_none())
            && let Some(named) = &su.get_ref().this_server
        {
            b.err(
                &su.span(),
                format!(
                    "[soft_unicast] comes from the fleet's shared configuration, whose this_server (`{}`) is one \
                     server's: run needs --this-server NAME (taking it, this host would take that server's slices \
                     and backbone address)",
                    named.get_ref()
                ),
            );
        }
        // The interface's own addresses are the host's: traffic to one inside a prefix the
        // XDP program redirects is the customer's (live, the upstream router's pings to the
        // host were dropped as spoofed_customer_source; its BGP and SSH would be too). So is
        // what every host on the link receives: the program took the host's OSPF hellos, IGMP
        // queries and DHCP offers for the customer's, and the data plane dropped them
        // (`link_broadcast`) or routed them. A catch-all prefix holds every address and is
        // warned about where it is written; one refused as space for no hosts, or that [bgp]
        // refuses for holding such space, is said there.
        let link_scoped = |net: ipnet::IpNet| {
            let said_elsewhere = customers::not_for_hosts(net).is_some() || loaded.file.bgp.is_some();
            customers::holds_link_scoped(net).filter(|_| !said_elsewhere)
        };
        for c in &loaded.file.customers {
            for prefix in &c.get_ref().prefixes {
                let Ok(net) = prefix.get_ref().parse::<ipnet::IpNet>() else { continue };
                if net.prefix_len() == 0 {
                    continue;
                }
                let name = c.get_ref().name.get_ref();
                if let Some(own) = host.iface_addresses.iter().find(|&a| net.contains(a)) {
                    let message = format!(
                        "prefix {net} of customer `{name}` holds {own}, an address of {} (--iface): the host's own \
                         traffic on that link (BGP with the upstream router, SSH) would be taken for the customer's",
                        host.iface
                    );
                    b.err(&prefix.span(), message);
                } else if let Some((what, senders)) = link_scoped(net) {
                    let message = format!(
                        "prefix {net} of customer `{name}` holds {what}: the host's own traffic there ({senders}), \
                         which no router forwards to a customer, would be taken for the customer's"
                    );
                    b.err(&prefix.span(), message);
                }
            }
        }
        if snapshot.eth.src == [0; 6] && !host.iface_mac_known {
            b.err(
                &server,
                "[server] sets no `mac`, and the interface's own address could not be read when transitd started",
            );
        }
        match b.finish(()) {
            Ok(()) => Ok(snapshot),
            // (A refused snapshot holds them as well: it was built whole, then thrown away.)
            Err(errors) => Err(Refused { errors, inputs: snapshot.inputs, input_stamps: snapshot.input_stamps }),
        }
    }
}

#[cfg(test)]
mod tests {
    /// A configuration refused still says which files it named, with the stamps taken
    /// before reading them: `run` watches them, so that writing a list file a rejected
    /// reload named (missing when it was read) tries it again.
    #[test]
    fn a_refused_configuration_names_its_files() {
        let dir = std::env::temp_dir().join(format!("transitd-refused-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("feed.txt"), "192.0.2.1\n").unwrap();
        let config = dir.join("t.toml");
        std::fs::write(
            &config,
            "[server]\nanycast = \"192.0.2.1\"\nnext_hop = \"192.0.2.254\"\n[[list]]\nname = \"a\"\n\
             file = \"feed.txt\"\n[[list]]\nname = \"b\"\nfile = \"missing.txt\"\n",
        )
        .unwrap();
        let loaded = crate::config::load(&config).unwrap();
        let host = super::Host { iface_mac_known: true, ..super::Host::default() };
        let refused = super::Snapshot::build_for_reload(&loaded, &host).err().unwrap();
        assert!(refused.errors.to_string().contains("cannot read"), "{}", refused.errors);
        assert_eq!(refused.inputs, [dir.join("feed.txt"), dir.join("missing.txt")]);
        assert_eq!(refused.input_stamps, [crate::snapshot::stamp(&dir.join("feed.txt")), None]);
        // What `check-config` and the start see is the same refusal, without the files.
        let errors = super::Snapshot::build_to_run(&loaded, &host).err().unwrap();
        assert_eq!(errors, refused.errors);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A customer prefix holding a destination the host receives for its link, which no
    /// router forwards (224.0.0.0/24, where OSPF and IGMP speak, RFC 5771 §4; the limited
    /// broadcast address, where DHCP offers come, RFC 1812 §5.3.5.1; ff02::/16, RFC 4291
    /// §2.7), is refused at the prefix whatever the interface's addresses, so `check-config`
    /// says it too: the XDP program took the host's OSPF hellos, IGMP queries and DHCP
    /// offers for the customer's. A prefix beside them is not, nor a catch-all; with `[bgp]`
    /// such a prefix is refused once, as space it would announce.
    #[test]
    fn a_prefix_holding_destinations_for_one_link_is_refused() {
        let text = |prefix: &str, more: &str| {
            format!(
                "[server]\nanycast = \"192.0.2.1\"\nnext_hop = \"192.0.2.254\"\n[[customer]]\nname = \"acme\"\n\
                 prefixes = [\"{prefix}\"]\n{more}"
            )
        };
        let host = super::Host { iface_mac_known: true, ..super::Host::default() };
        let build = |text: &str| {
            let loaded = crate::config::parse("t.toml", text).unwrap();
            super::Snapshot::build_to_run(&loaded, &host).map(|_| ()).map_err(|e| e.to_string())
        };
        let held = [
            ("224.0.0.0/3", "224.0.0.0/24 (multicast for one link)", "OSPF, IGMP, VRRP, mDNS"),
            ("240.0.0.0/4", "255.255.255.255 (the limited broadcast address)", "DHCP"),
            ("8000::/1", "ff02::/16 (multicast for one link)", "neighbour discovery, MLD, OSPFv3"),
            ("fe80::/9", "fe80::/10 (link-local unicast)", "neighbour discovery to the host's own address"),
            ("fe00::/8", "fe80::/10 (link-local unicast)", "neighbour discovery to the host's own address"),
        ];
        // Each prefix is the first written on line 6: its opening quote is column 13.
        for (prefix, what, senders) in held {
            let said = format!(
                "t.toml:6:13: prefix {prefix} of customer `acme` holds {what}: the host's own traffic there \
                 ({senders}), which no router forwards to a customer, would be taken for the customer's"
            );
            assert_eq!(build(&text(prefix, "")), Err(said));
        }
        for beside in ["240.0.0.0/5", "0.0.0.0/1", "8000::/2", "fc00::/7", "0.0.0.0/0", "::/0"] {
            assert_eq!(build(&text(beside, "")), Ok(()), "{beside}");
        }
        let announced =
            "t.toml:6:13: customer prefix 224.0.0.0/3 holds 224.0.0.0/4, which [bgp] would announce with it";
        assert_eq!(build(&text("224.0.0.0/3", "[bgp]\n")), Err(announced.to_string()));
    }

    /// A customer prefix holding one of the interface's own addresses is refused at the
    /// prefix (a catch-all one is not: it is warned about as such); with none of them, or
    /// without the interface's addresses (`check-config`), nothing is said.
    #[test]
    fn a_prefix_holding_an_address_of_the_interface_is_refused() {
        let text = "[server]\nanycast = \"192.0.2.1\"\nnext_hop = \"10.2.0.1\"\n[[customer]]\nname = \"acme\"\n\
                    prefixes = [\"203.0.113.0/24\", \"10.2.0.2/32\"]\n\
                    [[customer]]\nname = \"all\"\nprefixes = [\"::/0\"]\n";
        let loaded = crate::config::parse("t.toml", text).unwrap();
        let on = |addresses: &[&str]| super::Host {
            iface_mac_known: true,
            iface: "eth1".into(),
            iface_addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            ..super::Host::default()
        };
        let build = |host: super::Host| super::Snapshot::build_to_run(&loaded, &host).map(|_| ());
        assert_eq!(build(on(&[])), Ok(()));
        assert_eq!(build(on(&["10.2.0.3", "2001:db8::2", "fe80::1"])), Ok(()), "the catch-all holds these");
        // Where the prefix is written: its opening quote, counted in characters from 1.
        let start = text.find("\"10.2.0.2/32\"").unwrap();
        let line = text[..start].matches('\n').count() + 1;
        let col = start - text[..start].rfind('\n').map_or(0, |n| n + 1) + 1;
        let errors = build(on(&["10.2.0.3", "10.2.0.2"])).unwrap_err().to_string();
        assert_eq!(
            errors,
            format!(
                "t.toml:{line}:{col}: prefix 10.2.0.2/32 of customer `acme` holds 10.2.0.2, an address of eth1 \
                 (--iface): the host's own traffic on that link (BGP with the upstream router, SSH) would be taken \
                 for the customer's"
            )
        );
    }
}
