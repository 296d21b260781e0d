//! IPFIX messages (RFC 7011): the header, two templates (IPv4 and IPv6 flows) and their
//! data records.
//!
//! Every record holds, in this order: `flowStartMilliseconds` (152), `flowEndMilliseconds`
//! (153), the addresses (8 and 12, or 27 and 28), `sourceTransportPort` (7),
//! `destinationTransportPort` (11), `protocolIdentifier` (4), `packetDeltaCount` (2),
//! `octetDeltaCount` (1), `forwardingStatus` (89, RFC 7270, in one octet), how it was
//! sampled (RFC 5477: `selectorAlgorithm` (304) 1, systematic count-based;
//! `samplingPacketInterval` (305) 1 packet taken; `samplingPacketSpace` (306) N - 1 skipped,
//! for one in N), the customer as a routing domain of its own (its `vrf_id`, from its name;
//! 0 for none):
//! `ingressVRFID` (234) the one whose tunnel the packet came out of, `egressVRFID` (235) the
//! one it was for (Internet to customer, or on to another customer), and `VRFname` (236)
//! the customer's name, and transitd's
//! reason name as enterprise-specific element 1 of `[ipfix] enterprise_number`.
//!
//! Beside them an options template (RFC 7011 §4.2, the Metering Process Reliability
//! Statistics, with the fields that section names): scoped by `observationDomainId` (149),
//! `ignoredPacketTotalCount` (164) and `ignoredOctetTotalCount` (165), the packets sampled of
//! which no flow record is sent (the exporter's queue was full, or they were made under a
//! configuration it no longer holds), and the time the first and the last of them were
//! received (`observationTimeMilliseconds` (323), twice), so that a collector scaling counts
//! by the sampling rate knows they are short, and when.

use super::Ignored;
use crate::pipeline::{DropReason, TxReason, Verdict};

/// The template of IPv4 flow records.
pub const TEMPLATE_V4: u16 = 256;
/// The template of IPv6 flow records.
pub const TEMPLATE_V6: u16 = 257;
/// The options template of the reliability statistics.
pub const TEMPLATE_RELIABILITY: u16 = 258;
/// `selectorAlgorithm` 1 (RFC 5477 §8.2.1, the IANA PSAMP registry): systematic count-based
/// sampling, the countdown each worker runs.
const SYSTEMATIC_COUNT_BASED: u16 = 1;
/// transitd's reason element, under the configured enterprise number.
pub const REASON_ELEMENT: u16 = 1;
/// `max_message_size`'s default: an Ethernet MTU less IPv6 and UDP headers, and some room.
pub const DEFAULT_MAX_MESSAGE: u32 = 1400;
/// A variable-length field in a template.
const VARIABLE: u16 = 0xffff;

/// One flow to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// First and last sampled packet (ms since the Unix epoch).
    pub start_ms: u64,
    /// Last sampled packet.
    pub end_ms: u64,
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// Source address (IPv4 in the low 32 bits).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source port (0 but for TCP and UDP).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// `protocolIdentifier` ([`super::FlowSample::protocol`]).
    pub protocol: u8,
    /// Sampled packets.
    pub packets: u64,
    /// Their octets (IP header included).
    pub octets: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// One packet in this many was sampled (1: every packet).
    pub sampling: u32,
    /// The customer it came from (decapsulated from its tunnel): its `vrf_id`, or 0.
    pub ingress_vrf: u32,
    /// The customer it was for (Internet to customer, or a hairpin): its `vrf_id`, or 0.
    pub egress_vrf: u32,
    /// Customer name, or empty.
    pub vrf_name: String,
}

/// The template set both templates are in.
pub fn template_set(enterprise: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put_u16(&mut out, 2);
    put_u16(&mut out, 0); // length, below
    for (id, addr_len, src_ie, dst_ie) in [(TEMPLATE_V4, 4, 8, 12), (TEMPLATE_V6, 16, 27, 28)] {
        let fields: [(u16, u16); 16] = [
            (152, 8),
            (153, 8),
            (src_ie, addr_len),
            (dst_ie, addr_len),
            (7, 2),
            (11, 2),
            (4, 1),
            (2, 8),
            (1, 8),
            (89, 1),
            (304, 2),
            (305, 4),
            (306, 4),
            (234, 4),
            (235, 4),
            (236, VARIABLE),
        ];
        put_u16(&mut out, id);
        put_u16(&mut out, fields.len() as u16 + 1);
        for (ie, len) in fields {
            put_u16(&mut out, ie);
            put_u16(&mut out, len);
        }
        put_u16(&mut out, 0x8000 | REASON_ELEMENT);
        put_u16(&mut out, VARIABLE);
        out.extend_from_slice(&enterprise.to_be_bytes());
    }
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    // The options template set (ID 3): the template's ID, five fields, the first the scope.
    let fields: [(u16, u16); 5] = [(149, 4), (164, 8), (165, 8), (323, 8), (323, 8)];
    let set_len = 4 + 6 + 4 * fields.len() as u16;
    for v in [3, set_len, TEMPLATE_RELIABILITY, fields.len() as u16, 1] {
        put_u16(&mut out, v);
    }
    for (ie, len) in fields {
        put_u16(&mut out, ie);
        put_u16(&mut out, len);
    }
    out
}

/// The data set of one reliability statistics record: the samples `ignored` so far in
/// observation domain `domain`.
pub fn reliability_set(domain: u32, ignored: &Ignored) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    put_u16(&mut out, TEMPLATE_RELIABILITY);
    put_u16(&mut out, 40);
    out.extend_from_slice(&domain.to_be_bytes());
    for v in [ignored.packets, ignored.octets, ignored.first_ms, ignored.last_ms] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// One data record's bytes (without its set header).
pub fn record(r: &FlowRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(&r.start_ms.to_be_bytes());
    out.extend_from_slice(&r.end_ms.to_be_bytes());
    if r.v6 {
        out.extend_from_slice(&r.src.to_be_bytes());
        out.extend_from_slice(&r.dst.to_be_bytes());
    } else {
        out.extend_from_slice(&(r.src as u32).to_be_bytes());
        out.extend_from_slice(&(r.dst as u32).to_be_bytes());
    }
    put_u16(&mut out, r.src_port);
    put_u16(&mut out, r.dst_port);
    out.push(r.protocol);
    out.extend_from_slice(&r.packets.to_be_bytes());
    out.extend_from_slice(&r.octets.to_be_bytes());
    out.push(forwarding_status(&r.verdict));
    // Systematic count-based (RFC 5475 §5.1): one packet taken, then N - 1 skipped.
    put_u16(&mut out, SYSTEMATIC_COUNT_BASED);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&r.sampling.saturating_sub(1).to_be_bytes());
    out.extend_from_slice(&r.ingress_vrf.to_be_bytes());
    out.extend_from_slice(&r.egress_vrf.to_be_bytes());
    put_variable(&mut out, r.vrf_name.as_bytes());
    put_variable(&mut out, r.verdict.reason().as_bytes());
    out
}

/// Packs `records` after `leading` sets (templates, the reliability record; with the data
/// records they hold) into messages of at most `max` bytes (a record longer alone goes
/// alone); `sequence` counts the data records sent before (RFC 7011 §3.1) and is advanced.
pub fn messages(
    leading: Option<(&[u8], u32)>,
    records: &[FlowRecord],
    export_secs: u32,
    sequence: &mut u32,
    domain: u32,
    max: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut msg = header(export_secs, *sequence, domain);
    if let Some((sets, data_records)) = leading {
        msg.extend_from_slice(sets);
        *sequence = sequence.wrapping_add(data_records);
    }
    let mut open_set: Option<(usize, u16)> = None; // (offset of its header, template id)
    let mut in_msg = 0u32;
    // The records of one template together: a data set per template in a message, where
    // records in the order given made a set (its 4-byte header) at each change of family.
    let (v4, v6) = (records.iter().filter(|r| !r.v6), records.iter().filter(|r| r.v6));
    for r in v4.chain(v6) {
        let bytes = record(r);
        let template = if r.v6 { TEMPLATE_V6 } else { TEMPLATE_V4 };
        let needs_set = open_set.is_none_or(|(_, t)| t != template);
        let more = bytes.len() + if needs_set { 4 } else { 0 };
        if msg.len() + more > max && in_msg > 0 {
            close(&mut msg, open_set.take());
            out.push(std::mem::replace(&mut msg, header(export_secs, *sequence, domain)));
            in_msg = 0;
        }
        if open_set.is_none_or(|(_, t)| t != template) {
            close(&mut msg, open_set.take());
            open_set = Some((msg.len(), template));
            put_u16(&mut msg, template);
            put_u16(&mut msg, 0);
        }
        msg.extend_from_slice(&bytes);
        in_msg += 1;
        *sequence = sequence.wrapping_add(1);
    }
    close(&mut msg, open_set);
    if msg.len() > 16 {
        let len = msg.len() as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        out.push(msg);
    }
    out
}

/// The sequence number in the header of `message` (one [`messages`] made).
pub fn sequence_of(message: &[u8]) -> u32 {
    message.get(8..12).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A message header; its length is set when the message is complete.
fn header(export_secs: u32, sequence: u32, domain: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(DEFAULT_MAX_MESSAGE as usize);
    put_u16(&mut h, 10);
    put_u16(&mut h, 16);
    h.extend_from_slice(&export_secs.to_be_bytes());
    h.extend_from_slice(&sequence.to_be_bytes());
    h.extend_from_slice(&domain.to_be_bytes());
    h
}

/// Writes the open set's length, and the message's.
fn close(msg: &mut [u8], set: Option<(usize, u16)>) {
    if let Some((at, _)) = set {
        let len = (msg.len() - at) as u16;
        msg[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    let len = msg.len() as u16;
    msg[2..4].copy_from_slice(&len.to_be_bytes());
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A variable-length field: one length octet, or 255 and two (RFC 7011 §7).
fn put_variable(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    if bytes.len() < 255 {
        out.push(bytes.len() as u8);
    } else {
        out.push(255);
        put_u16(out, bytes.len() as u16);
    }
    out.extend_from_slice(bytes);
}

/// RFC 7270's `forwardingStatus`: what became of the packet, in the top two bits (forwarded
/// 01, dropped 10, consumed 11), and the nearest of its reason codes below.
pub fn forwarding_status(v: &Verdict) -> u8 {
    use DropReason as D;
    match v {
        // Answered by an ICMP error in its place: the packet went no further (RFC 1812
        // §4.3.2.3), dropped for what the error says: fragmentation and DF set, bad TTL.
        Verdict::Tx { reason: TxReason::IcmpTooBig, .. } => 133,
        Verdict::Tx { reason: TxReason::IcmpTimeExceeded, .. } => 137,
        // Answered here (a ping of our side of a tunnel, a challenged SYN): for us.
        Verdict::Tx { reason: TxReason::EchoReply | TxReason::SynChallenge, .. } => 195,
        // Fragmented to fit a tunnel's MTU, each fragment sent: forwarded, fragmented.
        Verdict::Tx { reason: TxReason::Fragment, .. } => 65,
        Verdict::Tx { .. } => 64,
        // Handed to the host's stack: punted.
        Verdict::Pass(_) => 193,
        // Probe replies and challenge answers: for us.
        Verdict::Consumed(_) => 195,
        Verdict::Drop(r) => match r {
            D::Firewall | D::Egress | D::DosRule => 129,    // ACL deny
            D::RateLimited | D::TcpSynFlood => 138,         // policer
            D::TtlExceeded => 137,                          // bad TTL
            D::MtuExceeded | D::BackboneMtuExceeded => 133, // fragmentation and DF set
            D::BadIpv4Checksum | D::BadGreChecksum => 134,  // bad header checksum
            D::Truncated | D::Oversize => 135,              // bad total length
            D::BadIpv4Header | D::BadIpv6Header | D::BadIpExtHeader | D::BadTcpHeader | D::BadUdpHeader => 136,
            D::BadGreHeader => 136,
            D::NoRoute | D::NoCustomer | D::WithdrawnPrefix | D::DecapMartianDestination => 131, // unroutable
            D::NextHopUnresolved => 132,                                                         // adjacency
            D::SpoofedCustomerSource | D::DecapSpoofedSource => 140,                             // RPF
            _ => 128,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(reason: TxReason) -> Verdict {
        Verdict::Tx { start: 0, len: 0, reason }
    }

    /// RFC 7270 §4.12's `forwardingStatus` says what became of the packet a record counts.
    /// One answered by an ICMP error never reached the customer: dropped (10), with the code
    /// of what the error says, 5 fragmentation and DF set or 9 bad TTL; one answered here was
    /// consumed (11), 3 for us. They were exported as forwarded (64), the transmitted frame
    /// being the error or the reply, not the packet.
    #[test]
    fn a_packet_answered_in_its_place_is_not_reported_forwarded() {
        let status = |reason| forwarding_status(&tx(reason));
        // The status in the top two bits, the reason code below.
        let (forwarded, dropped, consumed) = (1 << 6, 2 << 6, 3 << 6);
        assert_eq!(status(TxReason::Encapsulated), forwarded);
        assert_eq!(status(TxReason::Decapsulated), forwarded);
        assert_eq!(status(TxReason::Fragment), forwarded | 1, "forwarded, fragmented (IANA: 65)");
        assert_eq!(status(TxReason::IcmpTooBig), dropped | 5);
        assert_eq!(status(TxReason::IcmpTimeExceeded), dropped | 9);
        assert_eq!(status(TxReason::EchoReply), consumed | 3);
        assert_eq!(status(TxReason::SynChallenge), consumed | 3);
        // The drop of the same packet when no error may be sent says the same.
        assert_eq!(forwarding_status(&Verdict::Drop(DropReason::TtlExceeded)), status(TxReason::IcmpTimeExceeded));
        assert_eq!(forwarding_status(&Verdict::Drop(DropReason::MtuExceeded)), status(TxReason::IcmpTooBig));
    }

    /// The sets of a message as RFC 7011 §3.3.2 frames them: (set ID, its length).
    fn sets(message: &[u8]) -> Vec<(u16, usize)> {
        let mut out = Vec::new();
        let mut at = 16;
        while let Some(h) = message.get(at..at + 4) {
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            out.push((u16::from_be_bytes([h[0], h[1]]), len));
            at += len.max(4);
        }
        out
    }

    fn flow(v6: bool, src: u128) -> FlowRecord {
        FlowRecord {
            start_ms: 0,
            end_ms: 0,
            v6,
            src,
            dst: 9,
            src_port: 1,
            dst_port: 2,
            protocol: 17,
            packets: 1,
            octets: 100,
            verdict: Verdict::Drop(DropReason::Firewall),
            sampling: 1,
            ingress_vrf: 0,
            egress_vrf: 0,
            vrf_name: String::new(),
        }
    }

    /// IPv4 and IPv6 records given in turns go out in one data set per template, each whole
    /// (each set's length its header and its records), not in a set per change of family.
    #[test]
    fn a_message_holds_one_data_set_per_template() {
        let records: Vec<FlowRecord> = (0..10u32).map(|i| flow(i % 2 == 1, i.into())).collect();
        let (v4_len, v6_len) = (record(&records[0]).len(), record(&records[1]).len());
        let mut sequence = 0;
        let messages = messages(None, &records, 0, &mut sequence, 1, 1400);
        assert_eq!(messages.len(), 1);
        assert_eq!(sets(&messages[0]), [(TEMPLATE_V4, 4 + 5 * v4_len), (TEMPLATE_V6, 4 + 5 * v6_len)]);
        assert_eq!(sequence, 10);
    }

    /// The reliability statistics' options template holds what RFC 7011 §4.2 lists: the
    /// domain as its one scope field, the ignored packets and octets, the times of the first
    /// and the last ignored; its data record is as long as those fields, in that order.
    #[test]
    fn the_reliability_template_holds_what_rfc_7011_lists() {
        let templates = template_set(32473);
        // After the template set (ID 2), whose length is its third and fourth bytes.
        let options = &templates[usize::from(u16::from_be_bytes([templates[2], templates[3]]))..];
        // Set 3, its length; template 258, five fields, one of scope; the fields.
        let words: Vec<u16> = options.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect();
        let expected = [3, 30, TEMPLATE_RELIABILITY, 5, 1, 149, 4, 164, 8, 165, 8, 323, 8, 323, 8];
        assert_eq!(words, expected);
        let ignored = Ignored { packets: 3, octets: 1500, first_ms: 1_700_000_000_123, last_ms: 1_700_000_005_456 };
        let set = reliability_set(7, &ignored);
        let field_bytes: usize = [4, 8, 8, 8, 8].iter().sum();
        assert_eq!((set.len(), usize::from(u16::from_be_bytes([set[2], set[3]]))), (4 + field_bytes, 4 + field_bytes));
        assert_eq!(&set[4..8], &7u32.to_be_bytes());
        assert_eq!(&set[16..24], &1500u64.to_be_bytes());
        assert_eq!(&set[32..40], &1_700_000_005_456u64.to_be_bytes());
    }
}
