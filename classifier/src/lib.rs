//! transitd's rule language and rule tables.
//!
//! Rules are Wireshark display filters (`ip.dst == 203.0.113.100 and tcp.dstport in {20..21}`)
//! with Wireshark 4.0's meaning, applied to a packet's own headers. This crate parses them
//! ([`parse()`]), evaluates them directly ([`eval()`], the reference) and compiles ordered lists
//! of them into first-match tables ([`RuleTable`], [`RuleSet`]). It never touches packets:
//! the data plane fills a [`Key`] per packet and asks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// The docs are for the people who work on it, read with `--document-private-items`
// (docs/development.md), where links to private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod ast;
pub mod bytes;
pub mod classbench;
pub mod compile;
pub mod eval;
pub mod field;
pub mod limit;
pub mod list;
pub mod literals;
pub mod names;
pub mod parse;
pub mod pcre;
pub mod rule;
pub mod set;
pub mod table;
pub mod tree;

pub use ast::{Expr, Span};
pub use eval::eval;
pub use field::{ABSENT, DIMS, Dim, Key};
pub use limit::{BucketKey, BucketSpec, RateLimiter};
pub use list::{List, ListUse, Lists, Membership, NoLists, Registry, list_uses, list_uses_within};
pub use parse::{ParseError, parse, parse_with};
pub use rule::{Action, Decision, Mode, Rule, RuleSet};
pub use table::{Budget, LinearScan, RuleCompileError, RuleTable};
