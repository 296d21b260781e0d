//! AF_XDP benchmark helpers, run inside the namespaces `bench/scripts/afxdp-forwarding.sh`
//! builds:
//!
//! - `gen`: a traffic generator on XDP "live frames" (`BPF_PROG_TEST_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES`, as xdp-trafficgen does): TCP SYNs to 203.0.113.100:21,
//!   from 11.1.0.2, one flow per frame, sent out of an interface from its own MAC as fast as
//!   the kernel takes them. A kernel that refuses live frames (EPERM: seen on a Firecracker guest's 6.18) gets
//!   the same frames from an AF_PACKET socket instead, past the qdisc, 64 to a `sendmmsg`:
//!   each frame is an skb there, so it offers fewer a second, and `gen` says which it used.
//! - `sink`: counts the generated SYNs that arrive on an interface as a forwarder should send
//!   them (to the MAC it was given, in the encapsulation it was given), and drops everything
//!   (XDP): a forwarder sending elsewhere, or something else, measures nothing.
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

/// Options of `reflect`, and where and how long `sink` runs.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Interface.
    #[arg(long)]
    iface: String,
    /// Seconds to run for (above 0, at most a day).
    #[arg(long, default_value = "5", value_parser = crate::positive_seconds)]
    seconds: Duration,
}

/// Options of `sink`.
#[derive(clap::Args)]
pub struct SinkArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Pass what arrives to the kernel's stack instead of counting and dropping it (the
    /// kernel path's receiving end).
    #[arg(long, conflicts_with_all = ["dst_mac", "forwarded", "outer_dst"])]
    pass: bool,
    /// Count only frames to this MAC: the next hop the forwarder was given (for one that
    /// sends frames back as they came, the MAC they were sent to).
    #[arg(long, required_unless_present = "pass")]
    dst_mac: Option<String>,
    /// Count only frames holding the generated SYN so.
    #[arg(long, required_unless_present = "pass")]
    forwarded: Option<Forwarded>,
    /// The outer IPv4 destination of `--forwarded gre` or `vxlan`: the tunnel's remote.
    #[arg(long, required_if_eq_any = [("forwarded", "gre"), ("forwarded", "vxlan")])]
    outer_dst: Option<std::net::Ipv4Addr>,
}

/// How a forwarder sends the generated SYN back, as the sink counts it.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Forwarded {
    /// As it was sent (a reflector, testpmd's macswap).
    Syn,
    /// In GRE (RFC 2784, no optional field) to `--outer-dst` (transitd).
    Gre,
    /// In VXLAN to UDP port 4789 of `--outer-dst` (the kernel's path).
    Vxlan,
}

impl Forwarded {
    /// gen.bpf.c's `FORWARDED_*` for it, as the sink's `expected` map holds it.
    fn code(self) -> u8 {
        match self {
            Forwarded::Syn => 1,
            Forwarded::Gre => 2,
            Forwarded::Vxlan => 3,
        }
    }
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

/// The MAC address of interface `iface`, as the network namespace the command runs in has it.
fn mac_of(iface: &str) -> anyhow::Result<[u8; 6]> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    parse_mac(text.trim())
}

/// A 60-byte Ethernet/IPv4/TCP SYN from MAC `src` to MAC `dst`, from 11.1.0.2 to
/// 203.0.113.100:21, TTL 64, with a valid IPv4 header checksum. The source is an ordinary
/// public address: a private or reserved one is a bogon, which transitd's default DoS stage
/// drops before anything else runs.
fn syn_frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
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

/// Runs the generator; prints `offered N seconds S via live-frames|af-packet`.
pub fn generate(args: &GenArgs) -> anyhow::Result<()> {
    let index = ifindex(&args.iface)?;
    // From the interface's own MAC: a forwarder that answers the sender (testpmd's macswap)
    // then sends to the same MAC as one sending to the next hop it was given.
    let frame = syn_frame(parse_mac(&args.dst_mac)?, mac_of(&args.iface)?);
    let start = Instant::now();
    let (offered, via) = match send_live_frames(index, &frame, args.seconds) {
        Err(e) if refused(&e) => (send_by_packet_socket(index, &frame, args.seconds)?, "af-packet"),
        sent => (sent?, "live-frames"),
    };
    println!("offered {offered} seconds {:.3} via {via}", start.elapsed().as_secs_f64());
    Ok(())
}

/// The kernel refused the live-frames test run itself (not a failure to set it up).
fn refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<libbpf_rs::Error>().is_some_and(|e| e.kind() == libbpf_rs::ErrorKind::PermissionDenied)
}

fn send_live_frames(index: i32, frame: &[u8], seconds: Duration) -> anyhow::Result<u64> {
    // Said as text, not as libbpf's error: a setup refused (no CAP_BPF, say) is no kernel
    // refusing live frames, and must not send by AF_PACKET instead (`refused`).
    let skel = load().map_err(|e| anyhow::anyhow!("loading the generator: {e:#}"))?;
    let written = skel.maps.template.update(&0u32.to_ne_bytes(), frame, MapFlags::ANY);
    written.map_err(|e| anyhow::anyhow!("writing the generator's frame: {e}"))?;
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&(index as u32).to_ne_bytes());
    let start = Instant::now();
    while start.elapsed() < seconds {
        let input = ProgramInput {
            data_in: Some(frame),
            context_in: Some(&mut ctx),
            flags: LIVE_FRAMES,
            repeat: 200_000,
            ..ProgramInput::default()
        };
        skel.progs.xdp_gen.test_run(input)?;
    }
    Ok(counter(&skel, 0))
}

/// `PACKET_QDISC_BYPASS` from linux/if_packet.h (the libc crate does not have it).
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// Sends `frame` out of interface `index` from an AF_PACKET socket for `seconds`, each copy
/// with its own TCP source port as the XDP generator writes them; returns how many the
/// kernel took. Protocol 0: the socket sends and receives nothing (else every frame
/// arriving on the interface is copied to it). Past the qdisc: a veth has none worth
/// measuring, and its queue would only add drops.
fn send_by_packet_socket(index: i32, frame: &[u8], seconds: Duration) -> anyhow::Result<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const BATCH: usize = 64;
    let last_error = std::io::Error::last_os_error;
    // SAFETY: socket(2) takes no pointers; its result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    anyhow::ensure!(fd >= 0, "an AF_PACKET socket: {}", last_error());
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option's value is a c_int that outlives the call, its size passed with it.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(set == 0, "PACKET_QDISC_BYPASS: {}", last_error());
    // SAFETY: sockaddr_ll is a plain C struct, for which all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = index;
    // SAFETY: `addr` is a sockaddr_ll that outlives the call, its size passed with it.
    let bound = unsafe {
        libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), size_of::<libc::sockaddr_ll>() as libc::socklen_t)
    };
    anyhow::ensure!(bound == 0, "binding an AF_PACKET socket to interface {index}: {}", last_error());
    let mut frames = vec![frame.to_vec(); BATCH];
    let mut port = 0u16;
    let mut sent = 0u64;
    let start = Instant::now();
    while start.elapsed() < seconds {
        for f in &mut frames {
            port = port.wrapping_add(1);
            if let Some(sport) = f.get_mut(34..36) {
                sport.copy_from_slice(&port.to_be_bytes());
            }
        }
        let mut iov: [libc::iovec; BATCH] =
            std::array::from_fn(|i| libc::iovec { iov_base: frames[i].as_mut_ptr().cast(), iov_len: frames[i].len() });
        // SAFETY: mmsghdr is a plain C struct, for which all zeroes is a valid value (no
        // address: the socket's bound interface; no control data).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH headers, each naming one iovec of `iov` that points into
        // a frame of `frames`; all three live, unmoved and not otherwise borrowed, across the
        // call, which only reads them (and writes each header's msg_len).
        let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as libc::c_uint, 0) };
        if n < 0 {
            let e = last_error();
            // A full device queue is the interface saying "not faster": try again.
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            anyhow::bail!("sendmmsg on interface {index}: {e}");
        }
        sent += n as u64;
    }
    Ok(sent)
}

/// Counts what arrives as `args` says a forwarder should send it, for `seconds`; prints
/// `received N seconds S`.
pub fn sink(args: &SinkArgs) -> anyhow::Result<()> {
    let skel = load()?;
    let index = ifindex(&args.run.iface)?;
    let prog = if args.pass {
        &skel.progs.xdp_pass
    } else {
        write_expected(&skel, args)?;
        &skel.progs.xdp_sink
    };
    let xdp = Xdp::new(prog.as_fd());
    xdp.attach(index, XdpFlags::DRV_MODE)?;
    std::thread::sleep(args.run.seconds);
    let n = counter(&skel, 1);
    xdp.detach(index, XdpFlags::DRV_MODE)?;
    println!("received {n} seconds {:.3}", args.run.seconds.as_secs_f64());
    Ok(())
}

/// Writes what `xdp_sink` counts into its `expected` map (gen.bpf.c's `struct expected_`:
/// the destination MAC, `FORWARDED_*`, a byte unused, the outer destination). Unwritten, the
/// sink counts nothing.
fn write_expected(skel: &skel::GenSkel<'_>, args: &SinkArgs) -> anyhow::Result<()> {
    let (Some(mac), Some(forwarded)) = (&args.dst_mac, args.forwarded) else {
        anyhow::bail!("a sink that counts needs --dst-mac and --forwarded");
    };
    let mut value = [0u8; 12];
    value[0..6].copy_from_slice(&parse_mac(mac)?);
    value[6] = forwarded.code();
    if let Some(outer) = args.outer_dst {
        value[8..12].copy_from_slice(&outer.octets());
    }
    let written = skel.maps.expected.update(&0u32.to_ne_bytes(), &value, MapFlags::ANY);
    written.map_err(|e| anyhow::anyhow!("writing what the sink counts: {e}"))
}

/// AF_XDP rx→tx with no pipeline: every frame goes back out unchanged.
pub fn reflect(args: &RunArgs) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator's interface (the next hop the forwarders are given) and the forwarder's.
    const GEN: &str = "02:00:00:00:00:01";
    const DUT: &str = "02:00:00:00:00:02";

    /// What `transitd replay` sent for `syn_frame(DUT, GEN)` (TCP source port 7) under the
    /// script's configuration with next hop GEN: GRE with no flags, carrying IPv4, from
    /// 192.0.2.1 to the tunnel's remote 198.51.100.1, around the SYN, its TTL 63 (tshark -V).
    const TRANSITD_GRE: &str = "02000000000100000000000008004500004000004000402f4e59c0000201c633640100\
        00080045000028000100003f0634680b010002cb0071640007001500000001000000005002faf000000000";
    /// The kernel path's frame as scapy writes it: `Ether(dst=GEN) / IP(src="10.99.0.2",
    /// dst="10.99.0.1") / UDP(sport=40000, dport=4789) / VXLAN(vni=42) / Ether(dst=
    /// "02:00:00:00:00:42") /` the SYN, its TTL 63.
    const KERNEL_VXLAN: &str = "02000000000102000000000208004500005a00010000401165ca0a6300020a630001\
        9c4012b50046ae0b0c00000300002a00020000000042020000000043080045000028000100003f0634680b01\
        0002cb0071640007001500000001000000005002faf000000000000000000000";

    fn bytes(hex: &str) -> Vec<u8> {
        let hex: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
        hex.chunks(2).map(|d| u8::from_str_radix(std::str::from_utf8(d).unwrap(), 16).unwrap()).collect()
    }

    /// `frame` with byte `at` set to `value`.
    fn with(frame: &[u8], at: usize, value: u8) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[at] = value;
        f
    }

    /// `frame` to another MAC than its own.
    fn to_mac(frame: &[u8], mac: &str) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[0..6].copy_from_slice(&parse_mac(mac).unwrap());
        f
    }

    fn expecting(dst_mac: &str, forwarded: Forwarded, outer_dst: Option<[u8; 4]>) -> SinkArgs {
        SinkArgs {
            run: RunArgs { iface: "lo".into(), seconds: Duration::from_secs(1) },
            pass: false,
            dst_mac: Some(dst_mac.into()),
            forwarded: Some(forwarded),
            outer_dst: outer_dst.map(std::net::Ipv4Addr::from),
        }
    }

    /// How many times `xdp_sink` counts `frame`, run once on it (`BPF_PROG_TEST_RUN`) with
    /// what `expected` says written, or nothing (needs root, as CI runs the tests).
    fn counted(expected: Option<&SinkArgs>, frame: &[u8]) -> u64 {
        let skel = load().expect("load the sink (needs root)");
        if let Some(args) = expected {
            write_expected(&skel, args).unwrap();
        }
        let input = ProgramInput { data_in: Some(frame), ..ProgramInput::default() };
        skel.progs.xdp_sink.test_run(input).unwrap();
        counter(&skel, 1)
    }

    /// The sink counts a forwarded frame only when it arrives as its forwarder should send
    /// it: to the MAC given, in the encapsulation given, to the tunnel's remote, holding the
    /// generated SYN. It counted anything GRE, anything to port 21 or 4789, whatever its
    /// MAC: transitd given a wrong next hop measured its full rate (0.194 Mpps, exit 0).
    #[test]
    fn the_sink_counts_only_what_arrives_as_forwarded() {
        let syn = syn_frame(parse_mac(DUT).unwrap(), parse_mac(GEN).unwrap());
        let (gre, vxlan) = (bytes(TRANSITD_GRE), bytes(KERNEL_VXLAN));
        let reflected = expecting(DUT, Forwarded::Syn, None);
        let swapped = expecting(GEN, Forwarded::Syn, None);
        let transitd = expecting(GEN, Forwarded::Gre, Some([198, 51, 100, 1]));
        let kernel = expecting(GEN, Forwarded::Vxlan, Some([10, 99, 0, 1]));
        // Each forwarder's frame, as it should arrive.
        assert_eq!(counted(Some(&reflected), &syn), 1);
        assert_eq!(counted(Some(&swapped), &to_mac(&syn, GEN)), 1);
        assert_eq!(counted(Some(&transitd), &gre), 1);
        assert_eq!(counted(Some(&kernel), &vxlan), 1);
        let not_as_forwarded: [(&str, &SinkArgs, Vec<u8>); 11] = [
            ("reflected to another MAC", &reflected, to_mac(&syn, "02:00:00:00:00:77")),
            ("GRE to a wrong next hop", &transitd, to_mac(&gre, "02:00:00:00:00:77")),
            ("GRE to another remote", &expecting(GEN, Forwarded::Gre, Some([198, 51, 100, 2])), gre.clone()),
            ("GRE with its key flag", &transitd, with(&gre, 34, 0x20)),
            ("GRE holding a SYN to port 22", &transitd, with(&gre, 61, 22)),
            ("GRE holding a SYN-ACK", &transitd, with(&gre, 71, 0x12)),
            ("the SYN, not encapsulated", &transitd, to_mac(&syn, GEN)),
            ("GRE cut short", &transitd, gre[..40].to_vec()),
            ("VXLAN to a wrong MAC", &kernel, to_mac(&vxlan, "02:00:00:00:00:77")),
            ("VXLAN to UDP port 4790", &kernel, with(&vxlan, 37, 0xb6)),
            ("GRE where VXLAN is expected", &expecting(GEN, Forwarded::Vxlan, Some([198, 51, 100, 1])), gre.clone()),
        ];
        for (what, expected, frame) in not_as_forwarded {
            assert_eq!(counted(Some(expected), &frame), 0, "{what} was counted");
        }
        // A sink told nothing counts nothing.
        assert_eq!(counted(None, &gre), 0);
    }
}
