//! Why loading, attaching or updating the program failed.

use std::fmt;

use crate::{Found, XdpMode};

/// Why loading, attaching or updating failed.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Opening or loading the program into the kernel.
    #[error("loading the XDP program: {}{}", .0, not_permitted(.0))]
    Load(libbpf_rs::Error),
    /// Attaching to an interface.
    #[error("attaching XDP to {} ({mode}): {source}", Iface(*ifindex))]
    Attach {
        /// The interface.
        ifindex: i32,
        /// The mode tried.
        mode: &'static str,
        /// The reason.
        source: std::io::Error,
    },
    /// Another program is attached (or a running transitd holds the interface).
    #[error(
        "{} has an XDP program attached already: `{}` (id {}); {}",
        Iface(*ifindex),
        found.name,
        found.id,
        occupied_advice(*ifindex, found)
    )]
    Occupied {
        /// The interface.
        ifindex: i32,
        /// What is attached.
        found: Found,
    },
    /// `detach` found a program that is not transitd's.
    #[error(
        "{}: the XDP program attached is `{}` (id {}), not transitd's: left alone",
        Iface(*ifindex),
        found.name,
        found.id
    )]
    NotOurs {
        /// The interface.
        ifindex: i32,
        /// What is attached.
        found: Found,
    },
    /// Asking the kernel what is attached.
    #[error("querying the XDP program of {}: {source}", Iface(*ifindex))]
    Query {
        /// The interface.
        ifindex: i32,
        /// The reason.
        source: libbpf_rs::Error,
    },
    /// Tables that do not fit together (a bug in the caller).
    #[error("inconsistent tables for the XDP program: {0}")]
    Inconsistent(String),
    /// A table larger than the program's maps.
    #[error("{what} too large for the XDP program's maps (at most {limit})")]
    TooLarge {
        /// What.
        what: &'static str,
        /// The limits.
        limit: String,
    },
    /// Updating a map.
    #[error("updating map {map}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// The reason.
        source: libbpf_rs::Error,
    },
    /// Running the program on a frame (`BPF_PROG_TEST_RUN`).
    #[error("test run of the XDP program: {0}")]
    TestRun(libbpf_rs::Error),
}

/// An interface in a message, by the name the kernel has for its index now (what an operator
/// types after `ip link set dev`); by its index when no interface has it (gone meanwhile).
struct Iface(i32);

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // nix takes a null from if_indextoname(3) (no such interface) for success, its
        // sentinel for pointers being -1 (mmap's), and gives an empty name: a run whose
        // interface was deleted said "querying the XDP program of : No such device".
        let name = u32::try_from(self.0).ok().and_then(|i| nix::net::if_::if_indextoname(i).ok());
        match name.filter(|n| !n.is_empty()) {
            Some(name) => write!(f, "{}", name.to_string_lossy()),
            None => write!(f, "ifindex {}", self.0),
        }
    }
}

/// What an operator does about `found` on `ifindex`, with the command to paste: a program is
/// removed by its own mode's word alone (`xdp off` leaves a generic or an offloaded one there).
fn occupied_advice(ifindex: i32, found: &Found) -> String {
    let mode = match found.mode {
        XdpMode::Generic => "xdpgeneric",
        XdpMode::Native => "xdpdrv",
        XdpMode::Offloaded => "xdpoffload",
    };
    let remove = format!("`ip link set dev {} {mode} off`", Iface(ifindex));
    if found.is_transitd() {
        "a running transitd holds it (stop that one first)".to_string()
    } else if found.name == "?" {
        format!(
            "its name cannot be read without CAP_SYS_ADMIN: a program an older transitd left is removed by \
             `transitd detach --iface {}` run as root, another with {remove}",
            Iface(ifindex)
        )
    } else {
        format!("transitd does not replace another program: remove it first ({remove})")
    }
}

/// What to add to a load refused for want of privilege: who may load it.
fn not_permitted(e: &libbpf_rs::Error) -> &'static str {
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        " (run transitd as root, or with the capabilities of its systemd unit: CAP_BPF, CAP_NET_ADMIN, \
         CAP_NET_RAW, CAP_PERFMON and CAP_IPC_LOCK; docs/operations.md)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal's command names the mode the program runs in: `xdpdrv off` leaves an
    /// offloaded program on the NIC, as `xdpgeneric off` would leave a driver's.
    #[test]
    fn an_occupied_interface_is_told_the_ip_link_word_of_its_programs_mode() {
        for (mode, word) in
            [(XdpMode::Generic, "xdpgeneric"), (XdpMode::Native, "xdpdrv"), (XdpMode::Offloaded, "xdpoffload")]
        {
            let found = Found { id: 7, name: "other_prog".to_string(), mode };
            // Index 1 is the loopback interface in every network namespace.
            let said = BpfError::Occupied { ifindex: 1, found }.to_string();
            assert!(said.ends_with(&format!("remove it first (`ip link set dev lo {word} off`)")), "{said}");
        }
    }

    /// An interface that no longer exists (deleted under a running edge) is named by its
    /// index: if_indextoname(3) fails for it, and nix hands that failure over as an empty
    /// name, which the message printed as nothing.
    #[test]
    fn an_interface_that_is_gone_is_named_by_its_index() {
        // No namespace has an interface of this index (the kernel counts them up from 1).
        let gone = i32::MAX;
        assert_eq!(Iface(gone).to_string(), format!("ifindex {gone}"));
        let said = BpfError::Query { ifindex: gone, source: libbpf_rs::Error::from_raw_os_error(19) }.to_string();
        assert!(said.starts_with(&format!("querying the XDP program of ifindex {gone}: ")), "{said}");
        // Index 1 is the loopback interface in every network namespace.
        assert_eq!(Iface(1).to_string(), "lo");
    }
}
