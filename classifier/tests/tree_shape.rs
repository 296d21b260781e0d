//! The decision trees' shape: constraints every box shares alike tell no box from another,
//! and must not push the fields that do out of the trees' reach.

use classifier::{RuleTable, parse};

/// `ip.addr in {16 /24s} and tcp.port in {16 ports}` (1,024 boxes), then the same with six
/// constraints every box has alike, as a SYN flood rule writes them. Ranked by how many
/// boxes constrain them, the six took the places of the addresses and ports: no cut, one
/// leaf of all 1,024 boxes, scanned by every packet. They leave the tree as it was.
#[test]
fn constraints_every_box_shares_do_not_flatten_the_tree() {
    let nets: Vec<String> = (0..16).map(|i| format!("10.{i}.0.0/24")).collect();
    let ports: Vec<String> = (0..16).map(|i| format!("{}", 1000 + i * 7)).collect();
    let base = format!("ip.addr in {{{}}} and tcp.port in {{{}}}", nets.join(", "), ports.join(", "));
    let shared = " and tcp.flags.syn == 1 and tcp.flags.ack == 0 and ip.flags.mf == 0 and ip.frag_offset == 0 \
                  and ip.ttl < 64 and tcp.window_size_value == 0";
    let stats = |text: &str| RuleTable::build(&[parse(text).unwrap()]).unwrap().stats();
    let (plain, with_shared) = (stats(&base), stats(&format!("{base}{shared}")));
    assert_eq!(plain.boxes, 1024);
    assert!(plain.largest_leaf < 100, "{plain:?}");
    assert_eq!(with_shared.largest_leaf, plain.largest_leaf, "{with_shared:?} against {plain:?}");
}
