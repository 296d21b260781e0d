//! The reassembler against the datagram its fragments were cut from: a datagram (IPv4 with
//! 0 to 40 bytes of options, or IPv6 with the fragment header behind the fixed header or a
//! hop-by-hop header) is cut at any multiples of 8,
//! its pieces offered in any order with any duplicates and with any other bytes offered
//! between them as packets. It never panics; a datagram that fits the room and 16 pieces
//! comes out whole exactly at its last piece, byte for byte the one cut, giving up nothing but
//! the noise; one that does not is refused. With a piece that overlaps another offered among
//! them (`overlap`), each offer is held to a model of RFC 5722's reassembly: an overlap
//! discards what was held, a duplicate is refused alone, and the datagram comes out whole
//! exactly when the ranges held tile it.
#![no_main]

use arbitrary::Arbitrary;
use gre::reassembly::{HOLD_NS, MAX_PIECES, Offer, Reassembler, Refusal};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    ipv6: bool,
    /// IPv4: options of 4 times this (mod 11) bytes; IPv6: a hop-by-hop header if odd.
    options: u8,
    /// The datagram's data (at most 5000 bytes are used).
    data: Vec<u8>,
    /// Where to cut it, in 8-byte units.
    cuts: Vec<u16>,
    /// The order the pieces are offered in (a rotation and swaps).
    order: Vec<(u8, u8)>,
    /// Pieces offered twice.
    again: Vec<u8>,
    /// Other packets offered before the pieces (any bytes).
    noise: Vec<Vec<u8>>,
    /// Bytes the whole may take.
    room: u16,
    slots: u8,
    /// A piece reaching 8 bytes back into the one before (which piece, where among the
    /// offers).
    overlap: Option<(u8, u8)>,
}

/// The datagram (header first): IPv4 with `options` bytes of options (a router alert, then
/// no-ops), or IPv6 with a hop-by-hop header of 8 bytes or none, carrying `data`; and the
/// length of its header (what every fragment repeats).
fn datagram(ipv6: bool, options: usize, data: &[u8]) -> (Vec<u8>, usize) {
    if ipv6 {
        let hop_by_hop = if options > 0 { 8 } else { 0 };
        let mut p = vec![0u8; 40 + hop_by_hop];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((hop_by_hop + data.len()) as u16).to_be_bytes());
        p[6] = if hop_by_hop > 0 { 0 } else { 47 };
        p[7] = 64;
        p[8] = 0x20;
        p[39] = 1;
        if hop_by_hop > 0 {
            p[40] = 47;
            p[42..44].copy_from_slice(&[1, 4]);
        }
        p.extend_from_slice(data);
        (p, 40 + hop_by_hop)
    } else {
        let header = 20 + options;
        let mut p = vec![0u8; header];
        p[0] = 0x40 | (header / 4) as u8;
        p[2..4].copy_from_slice(&((header + data.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&[0x12, 0x34]);
        p[8] = 64;
        p[9] = 47;
        p[12] = 198;
        p[16] = 192;
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = match i {
                0 => 0x94, // router alert, 4 bytes
                1 => 4,
                2 | 3 => 0,
                _ => 1, // no-op
            };
        }
        p.extend_from_slice(data);
        let c = gre::checksum::checksum(&p[..header]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        (p, header)
    }
}

/// The fragment of `whole` (header `header` bytes) holding its data `start..end` (`more`
/// to come).
fn fragment(whole: &[u8], ipv6: bool, header: usize, start: usize, end: usize, more: bool) -> Vec<u8> {
    let (head, data) = whole.split_at(header);
    let mut f = head.to_vec();
    if ipv6 {
        // The fragment header goes where the upper layer was named: after the fixed
        // header, or after the hop-by-hop header.
        let names = if header > 40 { 40 } else { 6 };
        f[names] = 44;
        let word = start as u16 | u16::from(more);
        f.extend_from_slice(&[47, 0]);
        f.extend_from_slice(&word.to_be_bytes());
        f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        f.extend_from_slice(&data[start..end]);
        let payload = (f.len() - 40) as u16;
        f[4..6].copy_from_slice(&payload.to_be_bytes());
    } else {
        f.extend_from_slice(&data[start..end]);
        let len = f.len() as u16;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        let word = (start / 8) as u16 | if more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&word.to_be_bytes());
        f[10..12].copy_from_slice(&[0, 0]);
        let c = gre::checksum::checksum(&f[..header]);
        f[10..12].copy_from_slice(&c.to_be_bytes());
    }
    f
}

fuzz_target!(|input: Input| {
    let data = &input.data[..input.data.len().min(5000)];
    if data.is_empty() {
        return;
    }
    let options = if input.ipv6 { usize::from(input.options % 2) } else { usize::from(input.options % 11) * 4 };
    let (whole, header) = datagram(input.ipv6, options, data);
    let mut bounds: Vec<usize> =
        input.cuts.iter().map(|&c| usize::from(c) * 8).filter(|&c| c > 0 && c < data.len()).collect();
    bounds.extend([0, data.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    let pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    if pieces.len() < 2 {
        return; // a whole packet, no fragment
    }
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    for &(a, b) in &input.order {
        let n = order.len();
        order.swap(usize::from(a) % n, usize::from(b) % n);
    }
    let slots = usize::from(input.slots % 8) + 1;
    let room = usize::from(input.room).max(1);
    let mut r = Reassembler::new(slots, 6000);
    // Noise first: whatever it is, it takes at most the slots, and has expired by the time
    // the pieces come (noise the fuzzer makes into a piece of the datagram included).
    for n in &input.noise {
        let _ = r.offer(n, 0, room);
        assert!(r.held() <= slots);
    }
    if let Some((which, at)) = input.overlap {
        return overlapped(
            &input,
            &whole,
            header,
            &pieces,
            &order,
            usize::from(which),
            usize::from(at),
            slots,
            room,
            r,
        );
    }
    let fits = pieces.len() <= MAX_PIECES && whole.len() <= room;
    // What the pieces can give up besides their own datagram: the noise still held.
    let (noise_held, discarded_before) = (r.held() as u64, r.discarded());
    let mut whole_at = None;
    for (k, &i) in order.iter().enumerate() {
        let (start, end) = pieces[i];
        let f = fragment(&whole, input.ipv6, header, start, end, end < data.len());
        let twice = input.again.iter().any(|&a| usize::from(a) % order.len() == k) && k + 1 < order.len();
        let offered = r.offer(&f, HOLD_NS + 1, room);
        let held = matches!(offered, Offer::Held);
        match offered {
            Offer::Whole(c) => {
                assert!(fits && k + 1 == order.len(), "whole too soon: {k} of {}", order.len());
                let mut out = vec![0u8; room];
                let len = r.write(c, &mut out).expect("a datagram that fits the room is written");
                assert_eq!(&out[..len], &whole[..], "the datagram as it was cut");
                whole_at = Some(k);
            }
            Offer::Held => assert!(k + 1 < order.len() || !fits, "the last piece completes it or is refused"),
            Offer::Refused(Refusal::TooBig) => assert!(!fits, "refused though it fits"),
            Offer::Refused(why) => panic!("piece {k} refused: {why:?}"),
        }
        if twice && held {
            assert_eq!(r.offer(&f, HOLD_NS + 1, room), Offer::Refused(Refusal::Duplicate));
        }
        assert!(r.held() <= slots);
    }
    assert_eq!(whole_at.is_some(), fits);
    assert!(r.reassembled() <= 1 + input.noise.len() as u64);
    if fits {
        let given_up = r.discarded() - discarded_before;
        assert!(given_up <= noise_held, "{given_up} given up with {noise_held} held before the pieces");
    }
});

/// The pieces in `order` with a piece overlapping piece `which` (mod their number, from 1)
/// offered at `at` (mod the offers), against a model of RFC 5722's reassembly: the ranges
/// held for the datagram; a range offered again is a duplicate, refused alone; one that
/// overlaps a held range discards them all; one that makes them tile the datagram completes
/// it, byte for byte. (The overlapping piece carries the datagram's own bytes: where it
/// and the others happen to tile, the datagram is whole, as it would be anywhere.)
#[allow(clippy::too_many_arguments)]
fn overlapped(
    input: &Input,
    whole: &[u8],
    header: usize,
    pieces: &[(usize, usize)],
    order: &[usize],
    which: usize,
    at: usize,
    slots: usize,
    room: usize,
    mut r: Reassembler,
) {
    let data_len = whole.len() - header;
    if whole.len() > room || pieces.len() + 1 > MAX_PIECES {
        return; // refused as too big: the path above holds that
    }
    let which = 1 + which % (pieces.len() - 1);
    let (start, end) = pieces[which];
    if start == 8 && end == data_len {
        return; // the "piece" would be the whole datagram: no fragment at all
    }
    let mut ranges: Vec<(usize, usize)> = order.iter().map(|&i| pieces[i]).collect();
    ranges.insert(at % (ranges.len() + 1), (start - 8, end));
    let mut held: Vec<(usize, usize)> = Vec::new();
    for (k, &(a, b)) in ranges.iter().enumerate() {
        let f = fragment(whole, input.ipv6, header, a, b, b < data_len);
        let expected = if held.contains(&(a, b)) {
            "duplicate"
        } else if held.iter().any(|&(c, d)| a < d && c < b) {
            held.clear();
            "overlap"
        } else {
            held.push((a, b));
            held.sort_unstable();
            let tiles = held[0].0 == 0
                && held.last().is_some_and(|l| l.1 == data_len)
                && held.windows(2).all(|w| w[0].1 == w[1].0);
            if tiles {
                held.clear();
                "whole"
            } else {
                "held"
            }
        };
        match r.offer(&f, HOLD_NS + 1, room) {
            Offer::Whole(c) => {
                assert_eq!(expected, "whole", "offer {k} of {ranges:?}");
                let mut out = vec![0u8; room];
                let len = r.write(c, &mut out).expect("a datagram that fits the room is written");
                assert_eq!(&out[..len], whole, "the datagram as it was cut");
            }
            Offer::Held => assert_eq!(expected, "held", "offer {k} of {ranges:?}"),
            Offer::Refused(Refusal::Duplicate) => assert_eq!(expected, "duplicate", "offer {k} of {ranges:?}"),
            Offer::Refused(Refusal::Overlap) => assert_eq!(expected, "overlap", "offer {k} of {ranges:?}"),
            Offer::Refused(why) => panic!("offer {k} of {ranges:?} refused: {why:?}"),
        }
        assert!(r.held() <= slots);
    }
}
