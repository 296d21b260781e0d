//! AF_XDP benchmark helpers, run inside the namespaces `bench/scripts/afxdp-forwarding.sh`
//! builds:
//!
//! - `gen`: a traffic generator on XDP "live frames" (`BPF_PROG_TEST_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES`, as xdp-trafficgen does): TCP SYNs to 203.0.113.100:21,
//!   from 11.1.0.2, one flow per frame, sent out of an interface as fast as the kernel takes
//!   them.
//! - `sink`: counts and drops what arrives on an interface (XDP).
//! - `reflect`: the AF_XDP ceiling on this machine: every frame received on the queue is
//!   sent back as it is, with no pipeline.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput, Xdp, XdpFlags};

#[allow(clippy::all, missing_docs, unsafe_code)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/gen.skel.rs"));
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES` from linux/bpf.h.
const LIVE_FRAMES: u32 = 1 << 1;

/// Options of `gen`.
#[derive(clap::Args)]
pub struct GenArgs {
    /// Interface to send out of.
    #[arg(long)]
    iface: String,
    /// Seconds to send for (above 0, at most a day).
    #[arg(long, default_value = "5", value_parser = crate::positive_seconds)]
    seconds: Duration,
    /// Destination MAC (the DUT's interface).
    #[arg(long)]
    dst_mac: String,
}

/// Options of `sink` and `reflect`.
#[derive(clap::Args)]
pub struct SinkArgs {
    /// Interface.
    #[arg(long)]
    iface: String,
    /// Seconds to run for (above 0, at most a day).
    #[arg(long, default_value = "5", value_parser = crate::positive_seconds)]
    seconds: Duration,
    /// `sink` only: pass what arrives to the kernel's stack instead of counting and dropping
    /// it (the kernel path's receiving end).
    #[arg(long)]
    pass: bool,
}

fn ifindex(iface: &str) -> anyhow::Result<i32> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string and returns 0 on failure.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    anyhow::ensure!(i != 0, "no interface {iface}");
    Ok(i as i32)
}

fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let b: Vec<u8> = text.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>()?;
    <[u8; 6]>::try_from(b.as_slice()).map_err(|_| anyhow::anyhow!("bad MAC {text}"))
}

/// A 60-byte Ethernet/IPv4/TCP SYN from 11.1.0.2 to 203.0.113.100:21, TTL 64, with a valid
/// IPv4 header checksum. The source is an ordinary public address: a private or reserved
/// one is a bogon, which transitd's default DoS stage drops before anything else runs.
fn syn_frame(dst: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = [0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 11, 1, 0, 2, 203, 0, 113, 100];
    f[14..34].copy_from_slice(&ip);
    let c = gre::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    // TCP: sport (rewritten per frame), dport 21, seq 1, data offset 5, SYN, window 64240.
    let tcp = [0x9c, 0x40, 0, 21, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0];
    f[34..54].copy_from_slice(&tcp);
    f
}

fn counter(skel: &skel::GenSkel<'_>, slot: u32) -> u64 {
    match skel.maps.counters.lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY) {
        Ok(Some(v)) => v.iter().filter_map(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map(u64::from_ne_bytes).sum(),
        _ => 0,
    }
}

fn load() -> anyhow::Result<skel::GenSkel<'static>> {
    let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    Ok(skel::GenSkelBuilder::default().open(storage)?.load()?)
}

/// Runs the generator; prints `offered N seconds S`.
pub fn generate(args: &GenArgs) -> anyhow::Result<()> {
    let skel = load()?;
    let index = ifindex(&args.iface)?;
    let frame = syn_frame(parse_mac(&args.dst_mac)?);
    skel.maps.template.update(&0u32.to_ne_bytes(), &frame, MapFlags::ANY)?;
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&(index as u32).to_ne_bytes());
    let start = Instant::now();
    while start.elapsed() < args.seconds {
        let input = ProgramInput {
            data_in: Some(&frame),
            context_in: Some(&mut ctx),
            flags: LIVE_FRAMES,
            repeat: 200_000,
            ..ProgramInput::default()
        };
        skel.progs.xdp_gen.test_run(input)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("offered {} seconds {secs:.3}", counter(&skel, 0));
    Ok(())
}

/// Counts what arrives for `seconds`; prints `received N seconds S`.
pub fn sink(args: &SinkArgs) -> anyhow::Result<()> {
    let skel = load()?;
    let index = ifindex(&args.iface)?;
    let prog = if args.pass { &skel.progs.xdp_pass } else { &skel.progs.xdp_sink };
    let xdp = Xdp::new(prog.as_fd());
    xdp.attach(index, XdpFlags::DRV_MODE)?;
    std::thread::sleep(args.seconds);
    let n = counter(&skel, 1);
    xdp.detach(index, XdpFlags::DRV_MODE)?;
    println!("received {n} seconds {:.3}", args.seconds.as_secs_f64());
    Ok(())
}

/// AF_XDP rx→tx with no pipeline: every frame goes back out unchanged.
pub fn reflect(args: &SinkArgs) -> anyhow::Result<()> {
    use transitd::io::afxdp::{AfXdpConfig, AfXdpIo};
    use transitd::io::{FrameIo, Polled};
    use transitd::pipeline::{TxReason, Verdict};
    let index = ifindex(&args.iface)?;
    let program = transitd_bpf::XdpProgram::load()?;
    program.set_owned_v4(&[(std::net::Ipv4Addr::UNSPECIFIED, 0)])?;
    let mut io = AfXdpIo::open(&AfXdpConfig { iface: args.iface.clone(), ..AfXdpConfig::default() })?;
    program.register_socket(0, io.fd())?;
    let _attached = program.attach(index, transitd_bpf::AttachMode::Native)?;
    let start = Instant::now();
    let mut spins = 0u32;
    while start.elapsed() < args.seconds {
        let polled = io.poll(0, &mut |frames| {
            for f in frames.iter_mut() {
                f.verdict = Verdict::Tx { start: f.start, len: f.len, reason: TxReason::Encapsulated };
            }
        })?;
        if polled == Polled::Idle {
            spins += 1;
            if spins.is_multiple_of(1024) {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
    let s = io.stats();
    println!("rx {} tx {} seconds {:.3}", s.rx, s.tx, start.elapsed().as_secs_f64());
    Ok(())
}
