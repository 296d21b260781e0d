//! Sampled flow export by IPFIX (RFC 7011).
//!
//! Each worker samples one packet in `[ipfix] sample` (systematic count-based sampling,
//! RFC 5475 §5.1: a countdown, so a batch without a sample costs one subtraction) and, after
//! the pipeline has decided, pushes the packet's 5-tuple, length, customer and verdict into
//! a bounded lock-free queue shared by the workers ([`Samples`]): no lock, no allocation and
//! no system call on the per-packet path; a full queue loses the sample and counts it. The
//! exporter thread ([`exporter`]) aggregates samples into flows, reports a flow when it has
//! been idle or active for long enough, and sends the records to the collector over UDP
//! ([`wire`]: templates resent every minute, as RFC 7011 §8.4 asks over UDP).
//!
//! The counts in a record are those of the sampled packets; every record carries the
//! sampling as RFC 5477 says it (`samplingPacketInterval` 1, `samplingPacketSpace` N - 1) so
//! that a collector can scale them.

pub mod exporter;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;
use classifier::{ABSENT, Dim};
use crossbeam::queue::ArrayQueue;

use crate::pipeline::{BATCH_SIZE, Frame, Outcome, Parsed, Verdict, parse_frame};
use crate::snapshot::CustomerId;

/// One sampled packet and what became of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSample {
    /// When it was received (ns since the Unix epoch; capture time in a replay).
    pub timestamp_ns: u64,
    /// IPv6 rather than IPv4 (addresses: IPv4 in the low 32 bits).
    pub v6: bool,
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// TCP or UDP source port, else 0.
    pub src_port: u16,
    /// TCP or UDP destination port, else 0.
    pub dst_port: u16,
    /// RFC 7012's `protocolIdentifier`: IPv4's Protocol field (51 under an authentication
    /// header, in every fragment alike); for IPv6 the Next Header of the last extension
    /// header, the transport's, or in a fragment after the first its fragment header's, which
    /// names what the first fragment's chain reaches.
    pub protocol: u8,
    /// The IP packet's length (header included), as IPFIX counts octets.
    pub octets: u32,
    /// What the pipeline decided.
    pub verdict: Verdict,
    /// The customer it was for, or came from.
    pub customer: Option<CustomerId>,
    /// The customer whose tunnel it came out of (decapsulated), if it did: the flow's
    /// ingress routing domain, where `customer` without it is the egress one.
    pub from_customer: Option<CustomerId>,
    /// The generation of the snapshot that decided it ([`crate::snapshot::Snapshot::generation`]): what
    /// `customer` indexes.
    pub generation: u64,
}

/// Samples of which the collector gets no flow record, as RFC 7011 §4.2's Metering Process
/// Reliability Statistics tell it: how many (`ignoredPacketTotalCount`), their octets
/// (`ignoredOctetTotalCount`), and when the first and the last of them were received (two
/// `observationTimeMilliseconds`), so that a collector scaling counts knows how short they
/// are, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// Samples.
    pub packets: u64,
    /// Their octets, as a flow record would have counted them.
    pub octets: u64,
    /// When the first was received (ms since the Unix epoch; `u64::MAX` while none is known).
    pub first_ms: u64,
    /// When the last was received (0 while none is known).
    pub last_ms: u64,
}

impl Ignored {
    /// Nothing ignored. Its times are those of no sample, what `min` and `max` leave as they
    /// find (a 0 for the first was the earliest time of all, and came out as 1970).
    pub const NONE: Ignored = Ignored { packets: 0, octets: 0, first_ms: u64::MAX, last_ms: 0 };

    /// Counts `s` in.
    pub fn add(&mut self, s: &FlowSample) {
        let ms = s.timestamp_ns / 1_000_000;
        *self = self.and(Ignored { packets: 1, octets: u64::from(s.octets), first_ms: ms, last_ms: ms });
    }

    /// These and `other` together.
    pub fn and(self, other: Ignored) -> Ignored {
        Ignored {
            packets: self.packets.wrapping_add(other.packets),
            octets: self.octets.wrapping_add(other.octets),
            first_ms: self.first_ms.min(other.first_ms),
            last_ms: self.last_ms.max(other.last_ms),
        }
    }

    /// Whether there is a record to send: RFC 7011 §4.2's times are those of the first and
    /// the last sample ignored, which do not exist until one is (nor are known for a sample
    /// counted before its time reached the exporter; see [`Samples::take_lost`]). IPFIX has no
    /// null: sent as 0 they said 1970; and a total counter starts at 0 (RFC 7012's
    /// totalCounter), which needs no record to be known.
    pub fn can_be_told(&self) -> bool {
        self.packets > 0 && self.first_ms <= self.last_ms
    }
}

/// The queue from the workers to the exporter, and what it lost.
#[derive(Debug)]
pub struct Samples {
    queue: ArrayQueue<FlowSample>,
    /// Samples lost to a full queue, since the start.
    pub lost: AtomicU64,
    /// Their octets.
    pub lost_octets: AtomicU64,
    /// When the first and the last of those lost since the exporter last took their times
    /// were received (ms since the Unix epoch; `u64::MAX` and 0 while none was).
    pub first_lost_ms: AtomicU64,
    /// See `first_lost_ms`.
    pub last_lost_ms: AtomicU64,
}

impl Samples {
    /// A queue of `capacity` samples.
    pub fn new(capacity: usize) -> Arc<Samples> {
        Arc::new(Samples {
            queue: ArrayQueue::new(capacity.max(1)),
            lost: AtomicU64::new(0),
            lost_octets: AtomicU64::new(0),
            first_lost_ms: AtomicU64::new(u64::MAX),
            last_lost_ms: AtomicU64::new(0),
        })
    }

    /// The oldest sample, if any.
    pub fn pop(&self) -> Option<FlowSample> {
        self.queue.pop()
    }

    /// Counts `s` lost: the queue had no room for it.
    fn lose(&self, s: &FlowSample) {
        let ms = s.timestamp_ns / 1_000_000;
        // Every worker comes here at once when the exporter falls behind, many times in a
        // millisecond: a look at each time first leaves the shared line to be read, where a
        // read-modify-write took it from the others for each sample. Sound because between
        // the exporter's takes the first time only falls and the last only rises (a look
        // that finds this time already covered is right until the next take), and a take
        // leaves `u64::MAX` and 0, which no time is covered by.
        if ms < self.first_lost_ms.load(Ordering::Relaxed) {
            self.first_lost_ms.fetch_min(ms, Ordering::Relaxed);
        }
        if ms > self.last_lost_ms.load(Ordering::Relaxed) {
            self.last_lost_ms.fetch_max(ms, Ordering::Relaxed);
        }
        self.lost_octets.fetch_add(u64::from(s.octets), Ordering::Relaxed);
        // Release, the count last: an exporter that counts this sample sees its octets and
        // its times ([`Samples::take_lost`]).
        self.lost.fetch_add(1, Ordering::Release);
    }

    /// The samples lost since the last take, `seen` being the counts it took (advanced to
    /// these), and the times of those lost since: for the exporter alone, which tells each
    /// observation domain its own. Taken while a worker counts one in, the octets or the
    /// times of that one may come before its count: the count comes with the next take.
    pub fn take_lost(&self, seen: &mut (u64, u64)) -> Ignored {
        // Acquire, paired with `lose`'s Release: the times of every sample counted here are
        // in the swaps below, or were in an earlier take's.
        let packets = self.lost.load(Ordering::Acquire);
        let octets = self.lost_octets.load(Ordering::Relaxed);
        let taken = Ignored {
            packets: packets.wrapping_sub(seen.0),
            octets: octets.wrapping_sub(seen.1),
            first_ms: self.first_lost_ms.swap(u64::MAX, Ordering::Relaxed),
            last_ms: self.last_lost_ms.swap(0, Ordering::Relaxed),
        };
        *seen = (packets, octets);
        taken
    }
}

/// A worker's sampler.
#[derive(Debug)]
pub struct Sampler {
    samples: Arc<Samples>,
    /// The interval the countdown runs at: one frame in this many (0: sampling is off).
    every: u32,
    /// Frames to go before the next sample (1: the next one).
    countdown: u32,
    /// This batch's samples: frame index, and the packet as it was received.
    picked: ArrayVec<(u16, FlowSample), BATCH_SIZE>,
    /// Wait for room rather than lose a sample (a replay, which has time).
    wait: bool,
}

impl Sampler {
    /// A sampler feeding `samples`.
    pub fn new(samples: Arc<Samples>) -> Sampler {
        Sampler { samples, every: 0, countdown: 1, picked: ArrayVec::new(), wait: false }
    }

    /// Waits for room in the queue instead of losing samples.
    pub fn waiting(mut self) -> Sampler {
        self.wait = true;
        self
    }

    /// Before the pipeline runs on `frames`: reads the headers of those sampled, one in
    /// `every` (0: sampling is off).
    pub fn pick(&mut self, every: u32, frames: &[Frame<'_>]) {
        self.picked.clear();
        // Another interval (a reload): sampling starts afresh, the next frame first, as at
        // the start. The old interval's countdown (up to 999,999 frames after 1 in 1,000,000)
        // left that many frames unsampled under a configuration exporting one in `every`.
        if every != self.every {
            (self.every, self.countdown) = (every, 1);
        }
        if every == 0 {
            return;
        }
        let n = frames.len() as u32;
        while self.countdown <= n {
            let i = (self.countdown - 1) as usize;
            if let Some(sample) = frames.get(i).and_then(sample_of)
                && self.picked.len() < BATCH_SIZE
            {
                self.picked.push((i as u16, sample));
            }
            self.countdown += every;
        }
        self.countdown -= n;
    }

    /// After the pipeline: completes the picked samples with their outcomes, decided under
    /// `snap`, and queues them.
    pub fn record(&mut self, snap: &crate::snapshot::Snapshot, outcomes: &[Outcome]) {
        for (i, mut sample) in self.picked.drain(..) {
            let Some(outcome) = outcomes.get(usize::from(i)) else { continue };
            sample.verdict = outcome.verdict;
            sample.customer = outcome.customer;
            sample.from_customer =
                outcome.from_tunnel.and_then(|t| snap.tunnels.get(usize::from(t))).map(|t| t.customer);
            sample.generation = snap.generation;
            let mut pending = sample;
            loop {
                match self.samples.queue.push(pending) {
                    Ok(()) => break,
                    Err(back) if self.wait => {
                        pending = back;
                        std::thread::yield_now();
                    }
                    Err(lost) => {
                        self.samples.lose(&lost);
                        break;
                    }
                }
            }
        }
    }
}

/// The flow fields of a received frame, if it carries IP: read from the classifier key, so
/// that a malformed packet (cut short, say) is reported with what could be read of it.
fn sample_of(frame: &Frame<'_>) -> Option<FlowSample> {
    let (key, parsed) = parse_frame(frame.data(), frame.wire_len);
    let field = |d: Dim| Some(key.get(d)).filter(|&v| v != ABSENT);
    let v6 = match field(Dim::IpVersion)? {
        4 => false,
        6 => true,
        _ => return None,
    };
    // RFC 7012, element 4 (see `FlowSample::protocol`). The key's transport is past AH, and
    // absent in a later fragment, where IPv6's `IpProto` is the fixed header's (44): an IPv4
    // first fragment under AH was exported as TCP with ports while the rest of its datagram
    // said 51, an IPv6 datagram's later fragments as 44 while its first said TCP.
    let fragment = match parsed {
        Parsed::Ip(ip) => ip.fragment,
        _ => None,
    };
    let protocol = if v6 {
        fragment.map(|f| u32::from(f.protocol)).or(field(Dim::L4Proto)).or(field(Dim::IpProto))
    } else {
        field(Dim::IpProto)
    };
    let protocol = protocol.unwrap_or(0) as u8;
    let port = |d: Dim| if matches!(protocol, 6 | 17) { field(d).unwrap_or(0) as u16 } else { 0 };
    let (src, dst) = if v6 { (key.src_addr(), key.dst_addr()) } else { (key.src_addr() >> 96, key.dst_addr() >> 96) };
    // IPv4's total length; IPv6's payload length (a jumbogram's from its Jumbo Payload
    // option, RFC 2675: the header's field is 0) and its fixed header: never more than the
    // IP packet that arrived (octets "in incoming packets", RFC 7012: IP header and payload),
    // which a header lying about its length would make a thousand times what was sent. The
    // bytes past the link header, with what a capture left out (not `wire_len`, which a
    // capture's record may give below the bytes it holds).
    let arrived = (frame.data().len() as u32).saturating_add(frame.uncaptured_len);
    let ip_arrived = arrived.saturating_sub(field(Dim::L3At).unwrap_or(0));
    let ip_len = if v6 {
        field(Dim::Ipv6JumboLen).or(field(Dim::IpLen)).map(|l| l.saturating_add(40))
    } else {
        field(Dim::IpLen)
    };
    let octets = ip_len.unwrap_or(0).min(ip_arrived);
    Some(FlowSample {
        timestamp_ns: frame.timestamp_ns,
        v6,
        src,
        dst,
        src_port: port(Dim::SrcPort),
        dst_port: port(Dim::DstPort),
        protocol,
        octets,
        verdict: Verdict::Pass(crate::pipeline::PassReason::NotIp),
        customer: None,
        from_customer: None,
        generation: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 UDP frame 198.51.100.7:1234 -> 203.0.113.9:53 (written by scapy).
    const UDP_FRAME: [u8; 46] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x20,
        0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x14, 0x88, 0xc6, 0x33, 0x64, 0x07, 0xcb, 0x00, 0x71, 0x09, 0x04, 0xd2,
        0x00, 0x35, 0x00, 0x0c, 0xa3, 0x99, 0x78, 0x78, 0x78, 0x78,
    ];

    /// How many frames of a batch of `n` the sampler picks at one in `every`.
    fn picked(sampler: &mut Sampler, every: u32, n: usize) -> usize {
        let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| UDP_FRAME.to_vec()).collect();
        let frames: Vec<Frame<'_>> = bufs.iter_mut().map(|b| Frame::new(b, 0, UDP_FRAME.len(), 46, 0)).collect();
        sampler.pick(every, &frames);
        sampler.picked.len()
    }

    /// Systematic count-based sampling (RFC 5475 §5.1) at the interval configured now: after
    /// a reload from 1 in 1,000,000 to 1 in 1, every frame is sampled (the old countdown left
    /// the next 999,990 unsampled, exported as sampled one in one), and after one to 1 in 4,
    /// one frame in four.
    #[test]
    fn a_reload_that_changes_the_interval_samples_at_the_new_one() {
        let mut sampler = Sampler::new(Samples::new(16));
        assert_eq!(picked(&mut sampler, 1_000_000, 10), 1, "the first frame, as at the start");
        assert_eq!(picked(&mut sampler, 1_000_000, 10), 0);
        assert_eq!(picked(&mut sampler, 1, 10), 10);
        assert_eq!(picked(&mut sampler, 4, 8), 2);
        assert_eq!(picked(&mut sampler, 4, 8), 2);
        // Sampling off and on again starts afresh too.
        assert_eq!(picked(&mut sampler, 0, 8), 0);
        assert_eq!(picked(&mut sampler, 4, 1), 1);
    }

    /// A sample the queue has no room for is counted lost with its octets and the time it
    /// was received, as the collector is told (RFC 7011 §4.2: ignored packets and octets,
    /// the first and the last ignored): only how many were lost was kept.
    #[test]
    fn a_sample_without_room_is_counted_lost_with_its_octets_and_time() {
        let samples = Samples::new(1);
        let mut sampler = Sampler::new(samples.clone());
        let mut bufs: Vec<Vec<u8>> = (0..3).map(|_| UDP_FRAME.to_vec()).collect();
        // Received 1, 2 and 3 ms after the epoch.
        let frames: Vec<Frame<'_>> = (1u64..)
            .zip(bufs.iter_mut())
            .map(|(ms, b)| Frame::new(b, 0, UDP_FRAME.len(), 46, ms * 1_000_000))
            .collect();
        sampler.pick(1, &frames);
        let loaded = crate::config::parse("test.toml", "[server]\nanycast = \"192.0.2.1\"\n").expect("parses");
        let snap = crate::snapshot::Snapshot::build(&loaded).expect("builds");
        sampler.record(&snap, &[Outcome::new(Verdict::Pass(crate::pipeline::PassReason::NotIp)); 3]);
        assert_eq!(samples.pop().map(|s| s.timestamp_ns), Some(1_000_000), "the first, queued");
        // The second and the third, lost: 32 octets each (their IPv4 total length).
        let mut seen = (0, 0);
        assert_eq!(samples.take_lost(&mut seen), Ignored { packets: 2, octets: 64, first_ms: 2, last_ms: 3 });
        // Taken: the next take has nothing, and no times (the times of none).
        assert_eq!((samples.take_lost(&mut seen), seen), (Ignored::NONE, (2, 64)));
        let other = Ignored { packets: 1, octets: 10, first_ms: 1, last_ms: 1 };
        let both = Ignored { packets: 3, octets: 74, first_ms: 1, last_ms: 3 };
        let lost = Ignored { packets: 2, octets: 64, first_ms: 2, last_ms: 3 };
        assert_eq!((lost.and(other), Ignored::NONE.and(other)), (both, other));
        assert!(!Ignored::NONE.can_be_told() && both.can_be_told());
    }

    /// RFC 7011 §4.2's first and last ignored are the earliest and the latest time of the
    /// samples lost, whatever order the workers lose them in, and whatever each look before
    /// its read-modify-write lets through (a brute-force minimum and maximum over the same
    /// samples, from four threads); a take in the middle of it splits them, and the two
    /// takes together are the whole.
    #[test]
    fn the_times_of_lost_samples_are_their_minimum_and_maximum() {
        let samples = Samples::new(1);
        let times_of = |thread: u64| (0..2_000u64).map(move |i| (i * 7_919 + thread * 104_729) % 10_007 + 1);
        let sample =
            |ms: u64| FlowSample { timestamp_ns: ms * 1_000_000 + 999_999, octets: 3, ..sample_of_bytes(&UDP_FRAME) };
        let mut seen = (0, 0);
        let mut taken = Ignored::NONE;
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let samples = &samples;
                scope.spawn(move || times_of(thread).for_each(|ms| samples.lose(&sample(ms))));
            }
            taken = samples.take_lost(&mut seen);
        });
        let whole = taken.and(samples.take_lost(&mut seen));
        let all: Vec<u64> = (0..4).flat_map(times_of).collect();
        let (first_ms, last_ms) = (*all.iter().min().expect("times"), *all.iter().max().expect("times"));
        assert_eq!(whole, Ignored { packets: 8_000, octets: 24_000, first_ms, last_ms });
    }

    /// A jumbogram's octets are its fixed header's 40 and the payload length its Jumbo
    /// Payload option says (RFC 2675 §2), not the header's payload length field, which is 0:
    /// here the whole frame past its Ethernet header.
    #[test]
    fn a_jumbogram_counts_the_octets_its_option_says() {
        let payload_len: u32 = 70_000;
        let mut bytes = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        // IPv6: payload length 0, next header Hop-by-Hop; the addresses.
        bytes.extend([0x60, 0, 0, 0, 0, 0, 0, 64]);
        bytes.extend([0x20; 32]);
        // Hop-by-Hop (next header UDP, 8 bytes): a Jumbo Payload option.
        bytes.extend([17, 0, 0xc2, 4]);
        bytes.extend(payload_len.to_be_bytes());
        // UDP 1234 -> 53, length 0 (RFC 2675 §4), and data to the payload's end.
        bytes.extend([0x04, 0xd2, 0x00, 0x35, 0, 0, 0, 0]);
        bytes.resize(14 + 40 + payload_len as usize, b'x');
        let (len, wire_len) = (bytes.len(), bytes.len() as u32);
        let frame = Frame::new(&mut bytes, 0, len, wire_len, 0);
        let sample = sample_of(&frame).expect("an IPv6 packet");
        assert_eq!((sample.v6, sample.protocol, sample.dst_port), (true, 17, 53));
        assert_eq!(sample.octets, wire_len - 14);
    }

    /// Written by scapy: an IPv4 first fragment (MF, offset 0) under an authentication header
    /// (protocol 51; AH's next header TCP), TCP 1000 -> 80 and 4 bytes of data.
    const AH_FIRST_FRAGMENT: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00, 0x38,
        0x00, 0x07, 0x20, 0x00, 0x40, 0x33, 0xf4, 0x47, 0xc6, 0x33, 0x64, 0x07, 0xcb, 0x00, 0x71, 0x09, 0x06, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0xe8, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0x78, 0x78, 0x78,
    ];

    /// Written by scapy: the two fragments of an IPv6 datagram (fragment header, next header
    /// TCP): the first with TCP 1000 -> 80 and 4 bytes of data, the second (offset 24) with 8.
    const V6_FIRST_FRAGMENT: [u8; 86] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00,
        0x00, 0x20, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x07, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
        0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09, 0x03, 0xe8, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0x3f, 0x34, 0x00, 0x00, 0x78, 0x78, 0x78, 0x78,
    ];
    const V6_LATER_FRAGMENT: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x07, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
        0x06, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x09, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79,
    ];

    /// The sample of one whole frame.
    fn sample_of_bytes(bytes: &[u8]) -> FlowSample {
        let mut buf = bytes.to_vec();
        let frame = Frame::new(&mut buf, 0, bytes.len(), bytes.len() as u32, 0);
        sample_of(&frame).expect("an IP packet")
    }

    /// RFC 7012's `protocolIdentifier` is IPv4's Protocol field, 51 (AH) here, without the
    /// ports of the TCP header behind AH (they were exported as TCP's); for IPv6 it is the
    /// Next Header of the packet's last extension header: in a later fragment the fragment
    /// header's, TCP, as in the first (the later one was exported as 44, the fragment header).
    #[test]
    fn the_protocol_is_the_ip_headers_as_rfc_7012_says() {
        let ah = sample_of_bytes(&AH_FIRST_FRAGMENT);
        assert_eq!((ah.protocol, ah.src_port, ah.dst_port), (51, 0, 0));
        let first = sample_of_bytes(&V6_FIRST_FRAGMENT);
        assert_eq!((first.protocol, first.src_port, first.dst_port), (6, 1000, 80));
        let later = sample_of_bytes(&V6_LATER_FRAGMENT);
        assert_eq!((later.protocol, later.src_port, later.dst_port), (6, 0, 0));
    }
}
