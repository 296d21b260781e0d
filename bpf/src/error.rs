//! Why loading, attaching or updating the program failed.

use crate::Found;

/// Why loading, attaching or updating failed.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Opening or loading the program into the kernel.
    #[error("loading the XDP program: {0}")]
    Load(libbpf_rs::Error),
    /// Attaching to an interface.
    #[error("attaching XDP to ifindex {ifindex} ({mode}): {source}")]
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
        "ifindex {ifindex} has an XDP program attached already: `{}` (id {}); {}",
        found.name,
        found.id,
        if found.is_transitd() {
            "a running transitd holds it (stop that one first)"
        } else if found.name == "?" {
            "its name cannot be read without CAP_SYS_ADMIN: a program an older transitd left \
             is removed by `transitd detach --iface IFACE` run as root, another with \
             `ip link set dev IFACE xdp off`"
        } else {
            "transitd does not replace another program: remove it first (`ip link set dev IFACE xdp off`)"
        }
    )]
    Occupied {
        /// The interface.
        ifindex: i32,
        /// What is attached.
        found: Found,
    },
    /// `detach` found a program that is not transitd's.
    #[error("ifindex {ifindex}: the XDP program attached is `{}` (id {}), not transitd's: left alone", found.name, found.id)]
    NotOurs {
        /// The interface.
        ifindex: i32,
        /// What is attached.
        found: Found,
    },
    /// Asking the kernel what is attached.
    #[error("querying the XDP program of ifindex {ifindex}: {source}")]
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
