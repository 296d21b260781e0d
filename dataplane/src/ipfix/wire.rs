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
//! Statistics): scoped by `observationDomainId` (149), `ignoredPacketTotalCount` (164), the
//! packets sampled that the exporter never got (its queue was full), so that a collector
//! scaling counts by the sampling rate knows they are short.

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
    // The options template set (ID 3): one scope field, one field.
    let options: [u16; 9] = [3, 18, TEMPLATE_RELIABILITY, 2, 1, 149, 4, 164, 8];
    for v in options {
        put_u16(&mut out, v);
    }
    out
}

/// The data set of one reliability statistics record: `ignored` samples lost so far in
/// observation domain `domain`.
pub fn reliability_set(domain: u32, ignored: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_u16(&mut out, TEMPLATE_RELIABILITY);
    put_u16(&mut out, 16);
    out.extend_from_slice(&domain.to_be_bytes());
    out.extend_from_slice(&ignored.to_be_bytes());
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
    for r in records {
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
}
