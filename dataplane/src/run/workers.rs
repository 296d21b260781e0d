//! The worker threads of a run, one per queue. Each pins itself to its CPU first, then opens
//! its queue's AF_XDP socket, so that the UMEM is mapped and first touched from that CPU (on
//! its NUMA node); it hands the socket's descriptor back to be registered in the XDP
//! program, and waits until the program is attached before it polls. If any queue cannot
//! be opened, every worker is told to stop before anything is attached.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use gre::EthernetAddrs;

use crate::dropcap::DropCapture;
use crate::io::FrameIo;
use crate::io::afxdp::{AfXdpConfig, AfXdpIo};
use crate::neigh::NextHopCell;
use crate::punt::PuntDevice;
use crate::snapshot::Snapshot;
use crate::worker::{RxDrops, Worker, WorkerReport};

/// What every worker of a run shares.
pub(super) struct Plan {
    /// The socket settings (queue filled in per worker).
    pub socket: AfXdpConfig,
    pub idle_sleep: Duration,
    pub shared: Arc<ArcSwap<Snapshot>>,
    pub next_hop: Arc<NextHopCell>,
    /// The interface's MAC: the source of what is sent when the configuration sets no `mac`.
    pub iface_mac: [u8; 6],
    pub stop: Arc<AtomicBool>,
    pub capture: Option<Arc<DropCapture>>,
    /// Where passed frames go back to the host.
    pub punt: Arc<PuntDevice>,
    /// Where sampled flows go (the IPFIX exporter).
    pub samples: Arc<crate::ipfix::Samples>,
    /// Where state a reload replaced goes to be freed (the supervisor).
    pub retire: crossbeam::channel::Sender<crate::pipeline::Retired>,
    /// What the sockets dropped on receiving, summed for the prober.
    pub rx_drops: Arc<RxDrops>,
}

/// A socket a worker opened: what the XDP program and the log need to know of it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Opened {
    pub queue: u32,
    pub fd: i32,
    pub zero_copy: bool,
    pub huge_pages: bool,
    pub multi_buffer: bool,
}

/// Workers whose sockets are open, waiting for the word to poll.
pub(super) struct Ready {
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
    go: Vec<mpsc::Sender<bool>>,
    /// The sockets, in queue order.
    pub opened: Vec<Opened>,
}

/// Starts one worker per queue (`queues[i]` pinned to `cores[i]`, publishing into
/// `reports[i]`; the first one probes the tunnels) and waits until each has opened its
/// socket. The first failure stops them all.
pub(super) fn start(
    plan: &Plan,
    queues: &[u32],
    cores: &[usize],
    reports: &[Arc<Mutex<WorkerReport>>],
) -> anyhow::Result<Ready> {
    let mut ready = Ready { threads: Vec::new(), go: Vec::new(), opened: Vec::new() };
    let mut answers = Vec::new();
    for (i, (&queue, &core)) in queues.iter().zip(cores).enumerate() {
        let (opened_tx, opened_rx) = mpsc::channel::<Result<Opened, String>>();
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        let cfg = AfXdpConfig { queue, ..plan.socket.clone() };
        let (shared, next_hop, stop) = (plan.shared.clone(), plan.next_hop.clone(), plan.stop.clone());
        let (iface_mac, idle_sleep, report) = (plan.iface_mac, plan.idle_sleep, reports[i].clone());
        let tap = plan.capture.as_ref().map(|c| c.tap(queues.len()));
        let punt = plan.punt.punt(queues.len());
        let sampler = crate::ipfix::Sampler::new(plan.samples.clone());
        let (retire, rx_drops) = (plan.retire.clone(), plan.rx_drops.clone());
        let spawned = std::thread::Builder::new().name(format!("transitd-q{queue}")).spawn(move || {
            // A worker that is not where it was asked to be is an error, not a slow surprise.
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                let _ = opened_tx.send(Err(format!("queue {queue}: cannot pin the worker to CPU {core}")));
                return Ok(());
            }
            let io = match AfXdpIo::open(&cfg) {
                Ok(io) => io,
                Err(e) => {
                    let _ = opened_tx.send(Err(format!("{} queue {queue}: {e}", cfg.iface)));
                    return Ok(());
                }
            };
            let zero_copy = io.stats().zero_copy;
            let _ = opened_tx.send(Ok(Opened {
                queue,
                fd: io.fd(),
                zero_copy,
                huge_pages: io.huge_pages(),
                multi_buffer: io.multi_buffer(),
            }));
            // Nothing polls until the program is attached; told to stop, the socket closes.
            if !go_rx.recv().unwrap_or(false) {
                return Ok(());
            }
            let mut worker = Worker::new(io, shared.load_full())
                .publish_to(report)
                .punt_to(punt)
                .sample_flows(sampler)
                .share_rx_drops(rx_drops)
                .retire_to(retire);
            if i == 0 {
                worker = worker.probe();
            }
            if let Some(tap) = tap {
                worker = worker.capture(tap);
            }
            // The source address follows the running configuration (`mac`, or the
            // interface's), as the next hop does: a reload may change either.
            let eth = |snap: &Snapshot| {
                let dst = next_hop.get()?;
                let src = match snap.eth.src {
                    [0, 0, 0, 0, 0, 0] => iface_mac,
                    mac => mac,
                };
                Some(EthernetAddrs { dst, src })
            };
            worker.run(&shared, eth, &stop, idle_sleep)?;
            Ok(())
        });
        match spawned {
            Ok(handle) => {
                ready.threads.push(handle);
                ready.go.push(go_tx);
                answers.push(opened_rx);
            }
            Err(e) => {
                ready.abort();
                return Err(e.into());
            }
        }
    }
    for answer in answers {
        match answer.recv() {
            Ok(Ok(opened)) => ready.opened.push(opened),
            Ok(Err(why)) => {
                ready.abort();
                anyhow::bail!(why);
            }
            Err(_) => {
                ready.abort();
                anyhow::bail!("a worker ended before opening its socket");
            }
        }
    }
    Ok(ready)
}

impl Ready {
    /// Lets every worker poll; returns their threads.
    pub fn go(self) -> Vec<JoinHandle<anyhow::Result<()>>> {
        for go in &self.go {
            let _ = go.send(true);
        }
        self.threads
    }

    /// Tells every worker to stop (closing its socket) and waits for them.
    pub fn abort(self) {
        for go in &self.go {
            let _ = go.send(false);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}
