//! Helpers shared by the integration tests: paths to the bundled captures, tshark as the
//! oracle, and reading captures into frames.
#![allow(dead_code)]

pub mod lab;

use std::path::{Path, PathBuf};
use std::process::Command;

use transitd::io::capture::{CaptureReader, Record};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A bundled capture, e.g. `pcap("real/zeek-communityid-tcp.pcap")`.
pub fn pcap(rel: &str) -> PathBuf {
    root().join("pcaps").join(rel)
}

/// Every capture in `pcaps/<dir>`.
pub fn captures(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(root().join("pcaps").join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// A directory of the calling test's own: `transitd-<name>-<pid>` in the temporary
/// directory, made if it is not there.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("transitd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs tshark (reassembly off, so that it judges frame by frame) and returns stdout.
pub fn tshark(file: &Path, args: &[&str]) -> String {
    let out = tshark_command()
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("tshark is the oracle of these tests: install it (apt-get install tshark, or run .ci/run)");
    assert!(out.status.success(), "tshark {args:?} on {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// tshark with name resolution and reassembly off ([`transitd::dryrun::TSHARK_PREFERENCES`]).
fn tshark_command() -> Command {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n");
    for (name, value) in transitd::dryrun::TSHARK_PREFERENCES {
        cmd.arg("-o").arg(format!("{name}:{value}"));
    }
    cmd
}

/// How many frames Wireshark's `capinfos` counts in `file` (what tshark reads, without its
/// second of start-up: the same count on every bundled capture).
pub fn frame_count(file: &Path) -> u64 {
    let out = Command::new("capinfos")
        .args(["-c", "-M"])
        .arg(file)
        .output()
        .expect("capinfos comes with tshark (wireshark-common)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("capinfos on {}: {text}", file.display()))
}

/// The frame numbers `transitd match -Y EXPR` selects in `file` (the compiled one-rule table,
/// as a firewall rule is).
pub fn transitd_frames(file: &Path, expr: &str) -> std::collections::BTreeSet<u64> {
    let expr = classifier::parse(expr).unwrap_or_else(|e| panic!("{}", e.render(expr)));
    let mut frames = std::collections::BTreeSet::new();
    transitd::dryrun::match_filter(file, &expr, &Default::default(), None, |n| {
        frames.insert(n);
    })
    .unwrap();
    frames
}

/// The frame numbers tshark selects with display filter `filter`.
pub fn tshark_frames(file: &Path, filter: &str, extra: &[&str]) -> Vec<u64> {
    let mut args = vec!["-Y", filter, "-T", "fields", "-e", "frame.number"];
    args.extend_from_slice(extra);
    tshark(file, &args).lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Wireshark's `sharkd` holding one capture open: the dissection engine of tshark (the same
/// preferences, the same display filters) answering filter after filter without tshark's
/// half-second start-up per run. Reassembly is off, as in [`tshark`].
pub struct Sharkd {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    id: u64,
}

impl Sharkd {
    /// Loads `file` with tshark's frame-by-frame preferences plus `prefs` (name, value).
    pub fn open(file: &Path, prefs: &[(&str, &str)]) -> Sharkd {
        let mut child = Command::new("sharkd")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sharkd is the oracle of these tests: install it (apt-get install tshark, or run .ci/run)");
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut sharkd = Sharkd { child, stdin, stdout, id: 0 };
        for (name, value) in transitd::dryrun::TSHARK_PREFERENCES.iter().chain(prefs) {
            sharkd.call("setconf", serde_json::json!({ "name": name, "value": value })).unwrap();
        }
        sharkd.call("load", serde_json::json!({ "file": file })).unwrap();
        sharkd
    }

    /// The frame numbers display filter `filter` selects, or sharkd's error message.
    pub fn frames(&mut self, filter: &str) -> Result<std::collections::BTreeSet<u64>, String> {
        let params = serde_json::json!({ "filter": filter, "column0": "frame.number:0" });
        let frames = self.call("frames", params)?;
        let frames = frames.as_array().ok_or_else(|| format!("sharkd answered {frames}"))?;
        Ok(frames.iter().map(|f| f["num"].as_u64().expect("every frame has its number")).collect())
    }

    fn call(&mut self, method: &str, params: serde_json::Value) -> Result<serde_json::Value, String> {
        use std::io::{BufRead, Write};
        self.id += 1;
        let request = serde_json::json!({ "jsonrpc": "2.0", "id": self.id, "method": method, "params": params });
        writeln!(self.stdin, "{request}").expect("sharkd reads its requests");
        let mut line = String::new();
        // sharkd prints a line of its own on load (`load: filename=...`): answers are JSON.
        loop {
            line.clear();
            assert!(self.stdout.read_line(&mut line).expect("sharkd answers") > 0, "sharkd exited");
            if line.starts_with('{') {
                break;
            }
        }
        let mut answer: serde_json::Value = serde_json::from_str(&line).expect("sharkd answers JSON");
        assert_eq!(answer["id"], self.id, "sharkd answers in order");
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(answer["error"]["message"].to_string()),
        }
    }
}

impl Drop for Sharkd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A frame read from a capture, normalized to Ethernet.
pub struct Captured {
    pub bytes: Vec<u8>,
    pub wire_len: u32,
    pub timestamp_ns: u64,
}

/// The frames of a capture, in order (records of unsupported link types are skipped). A
/// capture that does not read to its end fails the test, unless it is one of
/// `pcaps/malformed`, broken on purpose (then the frames before the break).
pub fn read_frames(file: &Path) -> Vec<Captured> {
    let mut reader = CaptureReader::open(file).unwrap();
    let mut buf = vec![0u8; 300_000];
    let mut out = Vec::new();
    loop {
        match reader.next_into(&mut buf) {
            Ok(Some(Record::Frame { len, wire_len, timestamp_ns, .. })) => {
                out.push(Captured { bytes: buf[..len].to_vec(), wire_len, timestamp_ns })
            }
            Ok(Some(Record::Unsupported { .. } | Record::NotAPacket { .. })) => {}
            Ok(None) => break,
            Err(e) if file.components().any(|c| c.as_os_str() == "malformed") => {
                let _ = e;
                break;
            }
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), so that a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `frames` (Ethernet) with one in ten behind VLAN tags: one to four (the XDP program and
/// the parser read three), each 802.1ad, 802.1Q or the old QinQ EtherType 0x9100, the frame's
/// own EtherType after the last (from `seed`, so a failure reproduces).
pub fn tagged(mut frames: Vec<Vec<u8>>, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    for frame in frames.iter_mut().filter(|f| f.len() >= 14) {
        if rng.below(10) != 0 {
            continue;
        }
        let tags = [1, 1, 2, 3, 4][rng.below(5)];
        let mut stack = Vec::with_capacity(4 * tags);
        for vlan in 10..10 + tags as u16 {
            let tpid: u16 = [0x88a8, 0x8100, 0x9100][rng.below(3)];
            stack.extend_from_slice(&tpid.to_be_bytes());
            stack.extend_from_slice(&vlan.to_be_bytes());
        }
        frame.splice(12..12, stack);
    }
    frames
}

/// `frames` as a bad link delivers some: one in ten cut short past the Ethernet header, one
/// in twenty with a byte past it changed (from `seed`, so a failure reproduces).
pub fn damaged(mut frames: Vec<Vec<u8>>, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    for frame in frames.iter_mut().filter(|f| f.len() > 14) {
        let at = 14 + rng.below(frame.len() - 14);
        match rng.below(20) {
            0 | 1 => frame.truncate(at),
            2 => frame[at] = rng.next() as u8,
            _ => {}
        }
    }
    frames
}

/// Drop reasons of packets malformed at the IP or transport layer (a bad header, checksum
/// or length, an extension header out of place or past the chain's limit), which the host
/// discards as well: where the XDP program, reading only what it needs, passes such a packet
/// to the host and the pipeline drops it, the two end alike. The differential tests of the
/// program against the pipeline allow these, and only these, between a pass and a drop
/// ([`discarded_by_the_host`]; a `tiny_fragment` and an `overlapping_fragment` only where the
/// host discards it too). Not `too_many_vlan_tags`: the host strips any number of priority
/// tags (VLAN ID 0) and routes what they carry.
pub const DISCARDED_BY_THE_HOST: [transitd::pipeline::DropReason; 7] = {
    use transitd::pipeline::DropReason as D;
    [
        D::Truncated,
        D::BadIpv4Checksum,
        D::BadIpv4Header,
        D::BadIpv6Header,
        D::BadIpExtHeader,
        D::BadUdpHeader,
        D::BadTcpHeader,
    ]
};

/// True for a drop of `frame` the host makes too, given `among` (every frame the test gives,
/// `frame`'s datagram's other fragments with it): under one of [`DISCARDED_BY_THE_HOST`]'s
/// reasons, a `tiny_fragment` the host discards as well
/// ([`tiny_first_fragment_discarded_by_the_host`]), or an `overlapping_fragment` whose
/// datagram the host cannot reassemble from `among`
/// ([`overlapping_fragment_discarded_by_the_host`]).
pub fn discarded_by_the_host(frame: &[u8], verdict: &transitd::pipeline::Verdict, among: &[Vec<u8>]) -> bool {
    use transitd::pipeline::{DropReason, Verdict};
    match verdict {
        Verdict::Drop(DropReason::TinyFragment) => tiny_first_fragment_discarded_by_the_host(frame),
        Verdict::Drop(DropReason::OverlappingFragment) => overlapping_fragment_discarded_by_the_host(frame, among),
        Verdict::Drop(r) => DISCARDED_BY_THE_HOST.contains(r),
        _ => false,
    }
}

/// Whether the host discards `frame`, a later fragment the pipeline dropped as
/// `overlapping_fragment` (it starts below where the smallest first fragment the sanity
/// check lets through ends), given `among`, as Linux 6.18 does: a first fragment of its
/// datagram that holds more than its offset overlaps it, and the whole datagram is discarded
/// (RFC 5722 for IPv6; ip_frag_queue does so for IPv4 too, counting `ReasmOverlaps`); with no
/// first fragment the datagram is never reassembled. Not where a first fragment the host
/// takes ends at or before its offset: one the sanity check drops as tiny (8 bytes of TCP
/// over IPv4), or one it lets through below its floor for later fragments (the UDP header
/// alone over IPv6). The host reassembles the two and delivers the datagram:
/// `an_overlapping_fragment_is_the_hosts_discard_only_where_it_overlaps`. The datagram's
/// frames are judged together, not one by one, as the host judges them.
fn overlapping_fragment_discarded_by_the_host(frame: &[u8], among: &[Vec<u8>]) -> bool {
    // A frame that does not hold the length its IP header says the host discards unread.
    let Some(later) = fragment_of(frame) else { return true };
    let reassembles_with = |first: &Vec<u8>| {
        fragment_of(first).is_some_and(|f| {
            f.datagram == later.datagram && queued_end(first, &f).is_some_and(|end| end <= later.offset)
        })
    };
    !among.iter().any(reassembles_with)
}

/// A fragment as the host files it for reassembly.
struct Fragment {
    is_ipv6: bool,
    /// Its datagram: IPv4's source, destination, identification and protocol (RFC 791; 10
    /// bytes), IPv6's source, destination and identification (RFC 8200 §4.5; 36 bytes).
    datagram: Vec<u8>,
    /// Where its data starts in the datagram's, in bytes, and how many it holds.
    offset: usize,
    len: usize,
    /// More fragments follow (MF, M).
    more: bool,
}

/// The fragment `frame` holds, if it is one and whole (the frame holds the length its IP
/// header says), behind any VLAN tags the parser reads.
fn fragment_of(frame: &[u8]) -> Option<Fragment> {
    let at = ethertype_at(frame);
    let ip = frame.get(at + 2..)?;
    match frame.get(at..at + 2)? {
        [0x08, 0x00] => ipv4_fragment(ip),
        [0x86, 0xdd] => ipv6_fragment(ip),
        _ => None,
    }
}

/// An IPv4 packet's fragment fields (a whole packet's too: offset 0, none to follow).
fn ipv4_fragment(ip: &[u8]) -> Option<Fragment> {
    let header = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if header < 20 || total < header || ip.len() < total {
        return None;
    }
    let word = u16::from_be_bytes([ip[6], ip[7]]);
    Some(Fragment {
        is_ipv6: false,
        datagram: [&ip[12..20], &ip[4..6], &ip[9..10]].concat(),
        offset: usize::from(word & 0x1fff) * 8,
        len: total - header,
        more: word & 0x2000 != 0,
    })
}

/// The first fragment header's, behind hop-by-hop, routing, destination options and
/// authentication headers (as the parser reads the chain).
fn ipv6_fragment(ip: &[u8]) -> Option<Fragment> {
    let end = 40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
    let ip = ip.get(..end)?;
    let (mut next, mut at) = (ip[6], 40);
    while matches!(next, 0 | 43 | 51 | 60) {
        let Some(&[following, units]) = ip.get(at..at + 2) else { return None };
        let len = match next {
            51 => (usize::from(units) + 2) * 4,
            _ => (usize::from(units) + 1) * 8,
        };
        (next, at) = (following, at + len);
    }
    let header = ip.get(at..at + 8).filter(|_| next == 44)?;
    let word = u16::from_be_bytes([header[2], header[3]]);
    Some(Fragment {
        is_ipv6: true,
        datagram: [&ip[8..40], &header[4..8]].concat(),
        offset: usize::from(word & 0xfff8),
        len: end - (at + 8),
        more: word & 1 != 0,
    })
}

/// Where the data of `fragment` (of `frame`) ends in its datagram's as Linux queues it, if
/// it is a first fragment Linux queues at all: not an IPv6 one without its header chain
/// ([`tiny_first_fragment_discarded_by_the_host`]) or whose length is no multiple of 8
/// (RFC 8200 §4.5: a Parameter Problem); an IPv4 one ip_frag_queue cuts to a multiple of 8,
/// and takes for no fragment where nothing is left (discarding the datagram).
fn queued_end(frame: &[u8], fragment: &Fragment) -> Option<usize> {
    if fragment.offset != 0 || !fragment.more {
        return None;
    }
    if !fragment.is_ipv6 {
        return Some(fragment.len & !7).filter(|&end| end > 0);
    }
    let whole_chain = !tiny_first_fragment_discarded_by_the_host(frame);
    (fragment.len.is_multiple_of(8) && whole_chain).then_some(fragment.len)
}

/// Where the EtherType is in `frame`, behind any VLAN tags the parser reads (802.1Q,
/// 802.1ad, 0x9100).
fn ethertype_at(frame: &[u8]) -> usize {
    let mut at = 12;
    while matches!(frame.get(at..at + 2), Some([0x81, 0x00] | [0x88, 0xa8] | [0x91, 0x00])) {
        at += 4;
    }
    at
}

/// Whether the host discards `frame`, a first fragment the pipeline dropped as
/// `tiny_fragment`, as Linux 6.18 does (`ipv6frag_thdr_truncated`, RFC 8200 §4.5): an IPv6
/// one whose chain reaches its upper-layer header and holds less than 20 bytes of TCP, 8 of
/// UDP or ICMPv6, or nothing of another protocol, after the last extension header as long as
/// it says it is. Not an IPv4 one (Linux reassembles a TCP datagram whose first fragment
/// holds 8 bytes of its header: RFC 1858's concern is filters, not hosts), nor an IPv6 one
/// holding part of an inner IPv4 or IPv6 header, nor one that ends inside or at the end of an
/// extension header naming another (ipv6_skip_exthdr cannot read that one, and the fragment
/// is taken as not truncated: `a_tiny_first_fragment_the_host_reassembles_is_not_discarded_by_it`),
/// unless nothing follows its fragment header.
fn tiny_first_fragment_discarded_by_the_host(frame: &[u8]) -> bool {
    let at = ethertype_at(frame);
    if frame.get(at..at + 2) != Some(&[0x86, 0xdd][..]) {
        return false;
    }
    let l3 = at + 2;
    let Some(fixed) = frame.get(l3..l3 + 40) else { return true };
    // The packet as the kernel holds it, trimmed to its payload length.
    let end = (l3 + 40 + usize::from(u16::from_be_bytes([fixed[4], fixed[5]]))).min(frame.len());
    let packet = &frame[..end];
    let (mut next, mut at) = (fixed[6], l3 + 40);
    // Hop-by-hop, routing, fragment, authentication and destination options headers, as
    // Linux's ipv6_skip_exthdr walks them: where it cannot read a header's first two bytes
    // it gives up, and ipv6frag_thdr_truncated says not truncated.
    while matches!(next, 0 | 43 | 44 | 51 | 60) {
        // A fragment with nothing after its fragment header ip6_frag_queue discards (`end ==
        // offset`), whatever header it names.
        if next == 44 && at + 8 >= end {
            return true;
        }
        let Some(&[following, units]) = packet.get(at..at + 2) else { return false };
        let len = match next {
            44 => 8,
            51 => (usize::from(units) + 2) * 4,
            _ => (usize::from(units) + 1) * 8,
        };
        (next, at) = (following, at + len);
    }
    let least = match next {
        6 => 20,
        17 | 58 => 8,
        _ => 1,
    };
    at + least > end
}

/// A configuration with one customer owning all of IPv4 and IPv6, accepting everything,
/// behind one tunnel with a large MTU, and no DoS sanity checks: every well-formed IP packet
/// is encapsulated.
pub const CATCH_ALL: &str = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"

[dos.sanity]
land = false
tcp_flags = false
fragments = false
max_ipv6_extension_headers = 0
bogons = false
customer_sources = false

[[customer]]
name = "all"
prefixes = ["0.0.0.0/0", "::/0"]

[[customer.tunnel]]
name = "t"
remote = "198.51.100.1"
mtu = 9000

[[customer.route]]
prefix = "0.0.0.0/0"
tunnel = "t"

[[customer.route]]
prefix = "::/0"
tunnel = "t"
"#;

/// Per-frame verdicts of `frames` through `config`'s pipeline, in order, on the worker loop
/// `run` and `replay` use.
pub fn verdicts_of(
    config: &str,
    frames: Vec<Vec<u8>>,
) -> (Vec<transitd::pipeline::Verdict>, transitd::pipeline::WorkerStats, transitd::snapshot::Snapshot) {
    let snap = std::sync::Arc::new(snapshot(config));
    let io = transitd::io::memory::MemoryIo::new(frames, snap.frame_size);
    let (io, stats) = run_worker(io, &snap);
    (io.verdicts, stats, std::sync::Arc::try_unwrap(snap).expect("the worker is gone"))
}

/// [`verdicts_of`] with the capture's own timestamps as the receive times (rate limits run
/// on capture time).
pub fn verdicts_timed(
    config: &str,
    file: &Path,
) -> (Vec<transitd::pipeline::Verdict>, transitd::pipeline::WorkerStats) {
    let snap = std::sync::Arc::new(snapshot(config));
    let frames = read_frames(file).into_iter().map(|f| (f.bytes, f.timestamp_ns)).collect();
    let (io, stats) = run_worker(transitd::io::memory::MemoryIo::with_timestamps(frames, snap.frame_size), &snap);
    (io.verdicts, stats)
}

/// The frames of `file` through `config`'s pipeline, on the worker loop `run` and `replay`
/// use, over a link that carries `link_mtu` bytes: the in-memory backend afterwards (its
/// verdicts and the frames it sent) and the stats.
pub fn run_on_link(
    config: &str,
    file: &Path,
    link_mtu: usize,
) -> (transitd::io::memory::MemoryIo, transitd::pipeline::WorkerStats) {
    let snap = std::sync::Arc::new(snapshot(config));
    let frames = read_frames(file).into_iter().map(|f| f.bytes).collect();
    let mut io = transitd::io::memory::MemoryIo::new(frames, snap.frame_size);
    io.link_mtu = Some(link_mtu);
    run_worker(io, &snap)
}

fn run_worker(
    io: transitd::io::memory::MemoryIo,
    snap: &std::sync::Arc<transitd::snapshot::Snapshot>,
) -> (transitd::io::memory::MemoryIo, transitd::pipeline::WorkerStats) {
    let mut worker = transitd::worker::Worker::new(io, snap.clone());
    worker.run_to_end(Some(snap.eth)).unwrap();
    let (io, state) = worker.into_parts();
    (io, state.stats)
}

/// One customer, `victim`, owning `prefixes` (a route for each through its one tunnel),
/// accepting everything, under the `[dos.sanity]` settings `sanity` and with `dos` (TOML:
/// buckets and rules) appended.
pub fn victim_config(prefixes: &[&str], sanity: &str, dos: &str) -> String {
    let list: Vec<String> = prefixes.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"
[server]
anycast = "192.0.2.1"
[dos.sanity]
{sanity}
{dos}
[[customer]]
name = "victim"
prefixes = [{list}]
[[customer.tunnel]]
name = "t"
remote = "192.0.2.254"
mtu = 9000
{routes}
"#,
        list = list.join(", "),
        routes = prefixes
            .iter()
            .map(|p| format!("[[customer.route]]\nprefix = \"{p}\"\ntunnel = \"t\"\n"))
            .collect::<String>(),
    )
}

/// Compiles configuration text.
pub fn snapshot(text: &str) -> transitd::snapshot::Snapshot {
    let loaded = transitd::config::parse("test.toml", text).unwrap();
    transitd::snapshot::Snapshot::build(&loaded).unwrap_or_else(|e| panic!("{e}"))
}

/// The verdict `snap` gives the frame `bytes` received at `time_ns`, with the worker state
/// `limits` (which a test rebinds across reloads, as a worker does).
pub fn verdict_with(
    snap: &transitd::snapshot::Snapshot,
    limits: &mut transitd::pipeline::Limits,
    bytes: &[u8],
    time_ns: u64,
) -> transitd::pipeline::Verdict {
    outcome_with(snap, limits, bytes, time_ns).verdict
}

/// [`verdict_with`]'s whole outcome: the rules that decided, or would have.
pub fn outcome_with(
    snap: &transitd::snapshot::Snapshot,
    limits: &mut transitd::pipeline::Limits,
    bytes: &[u8],
    time_ns: u64,
) -> transitd::pipeline::Outcome {
    use transitd::pipeline::{Frame, HEADROOM, SPILL_SLOTS, Spill, process_frame};
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    let mut buf = vec![0u8; HEADROOM + bytes.len().max(2048)];
    buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
    let mut frame = Frame::new(&mut buf, HEADROOM, bytes.len(), bytes.len() as u32, time_ns);
    process_frame(snap, Some(&snap.eth), limits, &mut spill, &mut frame)
}

/// [`outcome_with`] with the next hop's addresses `eth` (`None`: not resolved yet), and the
/// frame after the pipeline: the bytes it sent for a `Tx` (which must lie in its buffer),
/// else those where it was received, as the pipeline left them.
pub fn outcome_and_frame_with(
    snap: &transitd::snapshot::Snapshot,
    eth: Option<&gre::EthernetAddrs>,
    limits: &mut transitd::pipeline::Limits,
    bytes: &[u8],
    time_ns: u64,
) -> (transitd::pipeline::Outcome, Vec<u8>) {
    use transitd::pipeline::{Frame, HEADROOM, SPILL_SLOTS, Spill, Verdict, process_frame};
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    let mut buf = vec![0u8; HEADROOM + bytes.len().max(2048)];
    buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
    let mut frame = Frame::new(&mut buf, HEADROOM, bytes.len(), bytes.len() as u32, time_ns);
    let outcome = process_frame(snap, eth, limits, &mut spill, &mut frame);
    frame.verdict = outcome.verdict;
    let after = match outcome.verdict {
        Verdict::Tx { .. } => frame.tx_bytes().expect("a Tx names bytes of its frame's buffer"),
        _ => &frame.buf[HEADROOM..HEADROOM + bytes.len()],
    };
    (outcome, after.to_vec())
}

/// `frame`'s IP packet in GRE (no options) from `src` to `dst`, behind `frame`'s Ethernet
/// addresses: what a customer's router sends through its tunnel.
pub fn in_gre(frame: &[u8], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let inner = &frame[14..];
    let mut header = etherparse::Ipv4Header::new((4 + inner.len()) as u16, 64, etherparse::IpNumber::GRE, src, dst)
        .expect("a GRE packet fits IPv4");
    header.header_checksum = header.calc_header_checksum();
    let mut out = frame[..12].to_vec();
    out.extend([0x08, 0x00]);
    out.extend(header.to_bytes());
    out.extend([0, 0, 0x08, 0x00]);
    out.extend(inner);
    out
}

/// Each verdict as `tx:REASON`, `pass:REASON`, `consumed:REASON` or the drop reason.
pub fn fates(verdicts: &[transitd::pipeline::Verdict]) -> Vec<String> {
    use transitd::pipeline::Verdict;
    verdicts
        .iter()
        .map(|v| match v {
            Verdict::Tx { reason, .. } => format!("tx:{}", reason.name()),
            Verdict::Pass(r) => format!("pass:{}", r.name()),
            Verdict::Drop(r) => r.name().to_string(),
            Verdict::Consumed(r) => format!("consumed:{}", r.name()),
        })
        .collect()
}

/// Writes to `file` the frames a scapy script makes: `script` is Python, with scapy's names
/// (AH's too) in scope, that leaves them in a list named `frames`. scapy builds what the
/// RFCs say, not what transitd parses: an oracle from outside the code under test.
pub fn scapy_pcap(file: &Path, script: &str) {
    let script = format!(
        "from scapy.all import *\nfrom scapy.layers.ipsec import AH\n{script}\nwrpcap({:?}, frames)\n",
        file.display().to_string()
    );
    let made = std::process::Command::new("/usr/bin/python3").args(["-c", &script]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

/// A disk that fills: a tmpfs of `size` (mount's `size=`, such as `64k`) on `dir`/disk, as
/// root. Unmounted when dropped, so that a test that panics anywhere after the mount (a
/// command that cannot be spawned, a failed assertion) leaves no mount behind; a test reads
/// what it needs off the disk before dropping it.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        let path = dir.join("disk");
        std::fs::create_dir_all(&path).unwrap();
        let size = format!("size={size}");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&path).status();
        assert!(mounted.is_ok_and(|s| s.success()), "mount a tmpfs on {} (as root)", path.display());
        SmallDisk { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// How much each of the kernel's IP counters `counters` rose (named as `nstat` names them:
/// `IpReasmOKs` from /proc/net/snmp, `Ip6ReasmOKs` from /proc/net/snmp6) while a host of its
/// own, a network namespace (unshare), was given the frames of `capture` on a veth: its end
/// has the first frame's destination MAC address and `addresses` (IPv6 ones without
/// duplicate address detection), and its peer sends the frames. What Linux does with a
/// packet, from outside the code under test.
pub fn host_counter_deltas(capture: &Path, addresses: &[&str], counters: &[&str]) -> Vec<i64> {
    let out = Command::new("unshare")
        .args(["-n", "/usr/bin/python3", "-c", HOST_COUNTER_DELTAS])
        .arg(capture)
        .arg(addresses.join(" "))
        .args(counters)
        .output()
        .expect("unshare (util-linux)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    said.split_whitespace().map(|n| n.parse().unwrap_or_else(|_| panic!("counts, not {said:?}"))).collect()
}

/// [`host_counter_deltas`]'s host, given the capture, the addresses (space-separated) and the
/// counters' names. Half a second before and after sending lets the links come up and the
/// host take the frames in.
const HOST_COUNTER_DELTAS: &str = r"
import subprocess, sys, time
from scapy.all import rdpcap, sendp
capture, addresses, names = rdpcap(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
sh = lambda c: subprocess.run(c, shell=True, check=True)
sh('ip link add name up0 type veth peer name host0 && ip link set host0 address ' + capture[0].dst)
sh('ip link set up0 up && ip link set host0 up')
for a in addresses:
    sh('ip addr add ' + a + ' dev host0' + (' nodad' if ':' in a else ''))
def counters():
    rows = [l.split() for l in open('/proc/net/snmp') if l.strip()]
    named = dict((h[0][:-1] + n, int(v)) for h, vs in zip(rows[::2], rows[1::2]) for n, v in zip(h[1:], vs[1:]))
    named.update((l.split()[0], int(l.split()[1])) for l in open('/proc/net/snmp6') if l.strip())
    return named
time.sleep(0.5)
before = counters()
sendp(capture, iface='up0', verbose=False)
time.sleep(0.5)
after = counters()
print(*[after[n] - before[n] for n in names])
";

/// Writes `frames` (Ethernet) to a pcap at `path`, one microsecond apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = pcap_file::pcap::PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, frame.len() as u32, frame)).unwrap();
    }
}
