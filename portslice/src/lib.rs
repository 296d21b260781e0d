//! Soft-unicast for transitd (the second seed): egress IPv4 addresses shared by many servers.
//!
//! Every egress address belongs to one data centre; its source ports above a reserved range
//! are cut into equal slices, each owned by one server of that data centre ([`plan`]). The
//! ownership table answers, for a return packet's destination address and port, which data
//! centre and which server owns it, in constant time ([`owner`]). Addresses carry tags
//! (country, trust class) that pick the egress address for a connection ([`select`]) and are
//! published as an RFC 8805 geofeed ([`geofeed`]). Nothing here does I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod geofeed;
pub mod owner;
pub mod plan;
pub mod select;

pub use owner::{Owner, OwnerTable};
pub use plan::{DataCentre, EgressRange, Move, Plan, PlanError, PlanMismatch, PlanSpec, Tags, slices_per_ip};
