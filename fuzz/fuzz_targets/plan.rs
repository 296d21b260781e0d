//! Any bytes as a plan file (`[soft_unicast] plan = "..."`, `transitd plan --previous`): a
//! file an operator may edit by hand or a tool may write. Reading it, checking it against
//! its own spec and compiling a checked one never panic, allocate without bound or hang; a
//! checked plan writes back to the same plan; and the compiled ownership table answers
//! every slice of every address as the plan's own lists do (`Plan.owners`, the oracle).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portslice::owner::{Owner, OwnerTable};
use portslice::plan::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = serde_json::from_slice::<Plan>(data) else { return };
    if plan.check().is_err() {
        return;
    }
    let written = serde_json::to_string(&plan).expect("a plan serializes");
    assert_eq!(serde_json::from_str::<Plan>(&written).expect("what was written reads"), plan);
    let table = OwnerTable::new(&plan);
    for (&ip, owners) in &plan.owners {
        for (slice, owner) in owners.iter().enumerate() {
            let (first, last) = plan.slice_ports(slice as u16);
            for port in [first, last] {
                match table.owner(ip, port) {
                    Owner::Server { server, .. } => assert_eq!(&table.servers[usize::from(server)], owner),
                    other => panic!("{ip:#x} port {port}: {other:?}, the plan says {owner}"),
                }
            }
        }
    }
});
