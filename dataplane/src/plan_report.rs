//! `transitd plan`'s report: each server's slices as port ranges, and the slices a re-plan
//! moves.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use portslice::{Move, Plan};

use crate::report::{counted, counted_as};

/// The plan for people; `moves` is `None` for a plan made afresh.
pub fn render(plan: &Plan, moves: Option<&[Move]>) -> String {
    let mut out = String::new();
    let addresses = plan.owners.len();
    let per_address = usize::from(plan.slices_per_ip);
    let (first, _) = plan.slice_ports(0);
    let (_, last) = plan.slice_ports(plan.slices_per_ip.saturating_sub(1));
    // The slices of one address and of all of them, each said as such: "3 egress addresses,
    // 31 slices" read as 31 in all, while the servers below hold 93.
    let _ = writeln!(
        out,
        "{}, {} on each (ports {first}-{last}): {} of {} ports",
        counted_as(addresses, "egress address", "egress addresses"),
        counted(per_address, "slice"),
        counted(addresses * per_address, "slice"),
        plan.spec.slice_size
    );
    for dc in &plan.spec.data_centres {
        for server in &dc.servers {
            let slices = plan.slices_of(server);
            let _ = writeln!(out, "server {server} (data centre {}): {}", dc.name, counted(slices.len(), "slice"));
            // Adjacent slices of one address print as one range.
            let mut by_ip: Vec<(u32, Vec<(u16, u16)>)> = Vec::new();
            for (ip, a, b) in slices {
                match by_ip.last_mut() {
                    Some((last_ip, ranges)) if *last_ip == ip => match ranges.last_mut() {
                        Some(r) if u32::from(r.1) + 1 == u32::from(a) => r.1 = b,
                        _ => ranges.push((a, b)),
                    },
                    _ => by_ip.push((ip, vec![(a, b)])),
                }
            }
            for (ip, ranges) in by_ip {
                let ranges: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                let _ = writeln!(out, "  {} ports {}", Ipv4Addr::from(ip), ranges.join(" "));
            }
        }
    }
    match moves {
        None => {
            let _ = writeln!(out, "new plan (no previous plan given)");
        }
        Some(moves) => {
            let verb = if moves.len() == 1 { "moves" } else { "move" };
            let _ = writeln!(out, "{} {verb}", counted(moves.len(), "slice"));
            for m in moves {
                let (a, b) = plan.slice_ports(m.slice);
                let from = m.from.as_deref().unwrap_or("(new)");
                let _ = writeln!(out, "  {} ports {a}-{b}: {from} -> {}", Ipv4Addr::from(m.ip), m.to);
            }
        }
    }
    out
}
