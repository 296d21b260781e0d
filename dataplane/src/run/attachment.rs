//! Whether the interface still runs this run's XDP program, asked of the kernel at each of
//! the supervisor's looks ([`super::looks`]). Something may detach it under a running edge
//! (`bpftool link detach`): the supervisor then ends the run, as every frame reaches the
//! host's stack unfiltered, and the BGP announcer withdraws while the kernel cannot be asked.

use transitd_bpf::XdpProgram;

/// Failed queries in a row after which whether the program is attached counts as unknown:
/// one (a netlink hiccup) must not withdraw every prefix on a guess, nor may failing go on
/// announcing.
const FAILED_QUERIES_TOLERATED: u32 = 3;

/// What the last look found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attachment {
    /// The interface runs this run's program.
    Attached,
    /// The kernel says the interface runs another program, or none.
    Detached,
    /// The kernel could not be asked, [`FAILED_QUERIES_TOLERATED`] times in a row.
    Unknown,
}

/// The attachment as the kernel last said it.
pub(super) struct AttachmentWatch {
    ifindex: i32,
    found: Attachment,
    /// Queries that failed in a row.
    failed_queries: u32,
}

impl AttachmentWatch {
    /// Watches `ifindex`, which the run's program was attached to.
    pub(super) fn new(ifindex: i32) -> AttachmentWatch {
        AttachmentWatch { ifindex, found: Attachment::Attached, failed_queries: 0 }
    }

    /// What the last look found.
    pub(super) fn last(&self) -> Attachment {
        self.found
    }

    /// Whether `program` is attached, asked of the kernel now. A failed query keeps the last
    /// answer until [`FAILED_QUERIES_TOLERATED`] have failed in a row.
    pub(super) fn look(&mut self, program: &XdpProgram) -> Attachment {
        self.found = match transitd_bpf::runs(self.ifindex, program) {
            Ok(ours) => {
                self.failed_queries = 0;
                if ours { Attachment::Attached } else { Attachment::Detached }
            }
            Err(e) => {
                self.failed_queries = self.failed_queries.saturating_add(1);
                if self.failed_queries == 1 {
                    log_line!("transitd: cannot tell whether the XDP program is attached ({e}): asking again");
                }
                if self.failed_queries < FAILED_QUERIES_TOLERATED { self.found } else { Attachment::Unknown }
            }
        };
        self.found
    }
}
