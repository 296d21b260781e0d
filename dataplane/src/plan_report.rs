//! `transitd plan`'s report: each server's slices as port ranges, and the slices a re-plan
//! moves.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use portslice::{Move, Plan};

/// The plan for people; `moves` is `None` for a plan made afresh.
pub fn render(plan: &Plan, moves: Option<&[Move]>) -> String {
    let mut out = String::new();
    let addresses = plan.owners.len();
    let (first, _) = plan.slice_ports(0);
    let (_, last) = plan.slice_ports(plan.slices_per_ip.saturating_sub(1));
    let _ = writeln!(
        out,
        "{addresses} egress addresses, {} slices of {} ports each (ports {first}-{last})",
        plan.slices_per_ip, plan.spec.slice_size
    );
    for dc in &plan.spec.data_centres {
        for server in &dc.servers {
            let slices = plan.slices_of(server);
            let _ = writeln!(out, "server {server} (data centre {}): {} slices", dc.name, slices.len());
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
            let _ = writeln!(out, "{} slices move", moves.len());
            for m in moves {
                let (a, b) = plan.slice_ports(m.slice);
                let from = m.from.as_deref().unwrap_or("(new)");
                let _ = writeln!(out, "  {} ports {a}-{b}: {from} -> {}", Ipv4Addr::from(m.ip), m.to);
            }
        }
    }
    out
}
