//! transitd: a userspace edge packet processor.
//!
//! The crate is a functional core and an imperative shell. The core ([`pipeline`]) is a set
//! of plain functions over a read-only [`snapshot::Snapshot`] and one frame; the shell
//! ([`io`], [`replay`], the binary) owns files, sockets and threads. Configuration
//! ([`config`]) is compiled into snapshots whole or not at all.

#![warn(missing_docs)]
// `unsafe` lives only at the ring/UMEM and socket boundaries, each block with the reason it
// holds: a block without its `// SAFETY:` comment does not build.
#![deny(clippy::undocumented_unsafe_blocks)]
// The docs are for the people who work on it, read with `--document-private-items`
// (docs/development.md), where links to private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

/// A line on standard error, as `log_line!` writes it (the line whole, under stderr's lock),
/// but a write that fails is let go: `log_line!` panics when whoever read the log has gone
/// (`transitd run ... 2>&1 | head`, a log shipper restarted: a closed pipe, EPIPE, as Rust
/// ignores SIGPIPE), and a data plane must not die of its log. Every message of the crate
/// and the binary goes through it (a test in `tests/layering.rs` holds them to it).
#[macro_export]
macro_rules! log_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod bgp;
pub mod cli;
pub mod config;
pub mod connect;
pub mod dropcap;
pub mod dryrun;
pub mod files;
pub mod fleet;
pub mod health;
pub mod io;
pub mod ipfix;
pub mod limits;
pub mod lpm;
pub mod metrics;
pub mod neigh;
pub mod netdev;
pub mod notify;
pub mod pipeline;
pub mod plan_report;
pub mod punt;
pub mod replay;
pub mod report;
pub mod run;
pub mod snapshot;
pub mod worker;
