//! The program's counters (its `stats` map), summed over CPUs, and a test run of one frame
//! judged by the counter it moved.

use libbpf_rs::{MapCore, MapFlags};

use crate::{
    BpfError, STAT_BACKBONE_LOCAL, STAT_EGRESS_LOCAL, STAT_GRE_NOT_OURS, STAT_NO_SOCKET, STAT_PASSED, STAT_REDIRECTED,
    XdpProgram,
};

/// What the program did with one frame: the counter its decision moved
/// ([`XdpProgram::test_run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpDecision {
    /// Handed to the queue's AF_XDP socket.
    Redirected,
    /// Not transitd's: passed to the kernel.
    Passed,
    /// Transitd's, but no socket on the queue: `unbound_queue` decided.
    NoSocket,
    /// Soft-unicast return traffic this server owns, passed.
    EgressLocal,
    /// Backbone GRE carrying such traffic, decapsulated and passed.
    BackboneLocal,
    /// GRE to the anycast address that is not ours (or a later fragment of such GRE from a
    /// tunnel's router, after its first), passed to the kernel.
    GreNotOurs,
}

impl XdpDecision {
    /// The counter's name, as the metrics and the program's stats call it.
    pub fn name(self) -> &'static str {
        match self {
            XdpDecision::Redirected => "redirected",
            XdpDecision::Passed => "passed",
            XdpDecision::NoSocket => "no_socket",
            XdpDecision::EgressLocal => "egress_local",
            XdpDecision::BackboneLocal => "backbone_local",
            XdpDecision::GreNotOurs => "gre_not_ours",
        }
    }
}

/// Counters of the XDP program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames handed to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that are not transitd's, passed to the kernel.
    pub passed: u64,
    /// Frames that are transitd's but arrived on a queue without a socket: passed or
    /// dropped, as `[server] unbound_queue` says.
    pub no_socket: u64,
    /// Soft-unicast return traffic this server owns, passed to its socket.
    pub egress_local: u64,
    /// Backbone GRE carrying such traffic, decapsulated and passed.
    pub backbone_local: u64,
    /// GRE to the anycast address that is not ours (no tunnel's, version 1, another
    /// payload, and the later fragments of such GRE from a tunnel's router), passed to the
    /// kernel.
    pub gre_not_ours: u64,
}

impl XdpProgram {
    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> XdpStats {
        let read = |slot: u32| -> u64 {
            match self.skel.maps.stats.lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY) {
                Ok(Some(per_cpu)) => {
                    per_cpu.iter().filter_map(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_ne_bytes).sum()
                }
                _ => 0,
            }
        };
        XdpStats {
            redirected: read(STAT_REDIRECTED),
            passed: read(STAT_PASSED),
            no_socket: read(STAT_NO_SOCKET),
            egress_local: read(STAT_EGRESS_LOCAL),
            backbone_local: read(STAT_BACKBONE_LOCAL),
            gre_not_ours: read(STAT_GRE_NOT_OURS),
        }
    }

    /// Runs the loaded program on `frame` in the kernel (`BPF_PROG_TEST_RUN`, as if it had
    /// arrived on queue 0), without an interface: what it decided, by the counter that moved,
    /// and the frame as it left it (a decapsulation strips it). Tests hold the program to
    /// the data plane with it. Counting is by difference, so nothing else may run the same
    /// program meanwhile (`Inconsistent` if not exactly one counter moved).
    pub fn test_run(&self, frame: &[u8]) -> Result<(XdpDecision, Vec<u8>), BpfError> {
        let before = self.stats();
        let mut out = vec![0u8; frame.len() + 256];
        let input = libbpf_rs::ProgramInput { data_in: Some(frame), data_out: Some(&mut out), ..Default::default() };
        let output = self.skel.progs.xdp_transitd.test_run(input).map_err(BpfError::TestRun)?;
        let out = output.data.map(|d| d.to_vec()).unwrap_or_default();
        let after = self.stats();
        let moved = [
            (XdpDecision::Redirected, after.redirected.wrapping_sub(before.redirected)),
            (XdpDecision::Passed, after.passed.wrapping_sub(before.passed)),
            (XdpDecision::NoSocket, after.no_socket.wrapping_sub(before.no_socket)),
            (XdpDecision::EgressLocal, after.egress_local.wrapping_sub(before.egress_local)),
            (XdpDecision::BackboneLocal, after.backbone_local.wrapping_sub(before.backbone_local)),
            (XdpDecision::GreNotOurs, after.gre_not_ours.wrapping_sub(before.gre_not_ours)),
        ];
        match moved.iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>()[..] {
            [(decision, 1)] => Ok((*decision, out)),
            _ => Err(BpfError::Inconsistent(format!("one test run moved the counters {moved:?}"))),
        }
    }
}
