//! Any bytes as what transitd writes on its BGP guard's stdin (`announce PREFIX...`, `alive`,
//! `withdraw-after MS`, `graceful-shutdown MS`, `drain`, `stop`), split as the guard splits it (a line at each newline, a CR before it
//! dropped; the first line that is not UTF-8 ends the input); and the same bytes as
//! announcements, a silence bound and a drain that transitd writes. Reading a line never panics; a
//! line is ignored exactly when its first word is none of the guard's; an announcement reads
//! as the union of its prefixes read one at a time, and is refused exactly when one of them
//! is. Whatever reads, and whatever transitd would write, written as transitd writes it is
//! one line that reads back as itself.
#![no_main]

use std::io::BufRead as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use transitd::bgp::Announcements;
use transitd::bgp::guard::Told;

/// `told` written as transitd writes it, through the pipe as the guard reads it.
fn reads_back(told: &Told) {
    let line = told.line();
    let written = format!("{line}\n");
    let lines: Vec<String> = written.as_bytes().lines().map(|l| l.expect("UTF-8")).collect();
    assert_eq!(lines, std::slice::from_ref(&line), "not one line");
    assert_eq!(Told::read(&line), Some(Ok(told.clone())), "{line:?}");
}

/// A prefix from 18 bytes: the family, the length, then the address (IPv4 its first four).
fn prefix(c: &[u8]) -> String {
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&c[2..18]);
    if c[0] & 1 == 0 {
        format!("{}/{}", Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]), c[1] % 33)
    } else {
        format!("{}/{}", Ipv6Addr::from(addr), c[1] % 129)
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.lines().take(256) {
        let Ok(line) = line else { break };
        let read = Told::read(&line);
        let (word, words) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let words_of_the_guard = ["alive", "stop", "drain", "withdraw-after", "graceful-shutdown", "announce"];
        assert_eq!(read.is_some(), words_of_the_guard.contains(&word), "{line:?}");
        // The words without an argument read as themselves, whatever follows them.
        for (bare, told) in [("alive", Told::Alive), ("stop", Told::Stop), ("drain", Told::Drain)] {
            if word == bare {
                assert_eq!(read, Some(Ok(told)), "{line:?}");
            }
        }
        if word == "announce" && words.split_whitespace().count() <= 64 {
            let mut union = Some(Announcements::none());
            for w in words.split_whitespace() {
                match Told::read(&format!("announce {w}")) {
                    Some(Ok(Told::Announce(one))) => {
                        assert_eq!(one.0.len(), 1, "{w:?}");
                        if let Some(all) = &mut union {
                            all.0.extend(one.0);
                        }
                    }
                    Some(Err(_)) => union = None,
                    other => panic!("`announce {w}` read as {other:?}"),
                }
            }
            match (&read, union) {
                (Some(Ok(Told::Announce(all))), Some(union)) => assert_eq!(all, &union, "{line:?}"),
                (Some(Err(_)), None) => {}
                (read, union) => panic!("{line:?} read as {read:?}, its prefixes one at a time as {union:?}"),
            }
        }
        if let Some(Ok(told)) = &read {
            reads_back(told);
        }
    }

    // What transitd writes: up to 64 prefixes, a silence bound, a drain.
    let routes = Announcements(data.chunks_exact(18).take(64).map(|c| prefix(c).parse().expect("a prefix")).collect());
    reads_back(&Told::Announce(routes));
    let mut ms = [0u8; 8];
    ms[..data.len().min(8)].copy_from_slice(&data[..data.len().min(8)]);
    reads_back(&Told::WithdrawAfter(Duration::from_millis(u64::from_le_bytes(ms))));
    reads_back(&Told::GracefulShutdown(Duration::from_millis(u64::from_le_bytes(ms))));
    reads_back(&Told::Alive);
    reads_back(&Told::Drain);
    reads_back(&Told::Stop);
});
