//! Kuznetzov's modified pcap (magic 0xa1b2cd34, from his 1999 libpcap patches; editcap's
//! `modpcap`) read as standard pcap. Its records' headers are 8 bytes longer (interface index
//! u32, protocol u16, packet type u8, padding u8); those 8 bytes are left out on the way to
//! pcap-file, which reads the rest. libpcap and tshark read the format in either byte order;
//! pcap-parser reads it little-endian only, and pcap-file not at all.
//!
//! SuSE 6.3's variant has the same magic and 4 bytes more in each record header: tshark tells
//! the two apart by trying both on the first records, libpcap does not, and neither is done
//! here (those files read as the modified format, as libpcap reads them).

use std::io::Read;

/// A standard pcap record header's length, and the modified one's.
const STANDARD_HEADER: usize = 16;
const MODIFIED_HEADER: usize = 24;

/// The byte order of a modified pcap file whose first four bytes are `magic` (true: big-endian);
/// `None` if they are not the modified magic.
pub(super) fn big_endian(magic: &[u8]) -> Option<bool> {
    match magic {
        [0xa1, 0xb2, 0xcd, 0x34] => Some(true),
        [0x34, 0xcd, 0xb2, 0xa1] => Some(false),
        _ => None,
    }
}

/// The standard pcap magic (microseconds) in the byte order given.
pub(super) fn standard_magic(big_endian: bool) -> [u8; 4] {
    if big_endian { [0xa1, 0xb2, 0xc3, 0xd4] } else { [0xd4, 0xc3, 0xb2, 0xa1] }
}

/// The records of a modified pcap (what follows its file header) as standard pcap records.
pub(super) struct StandardRecords<R> {
    inner: R,
    big_endian: bool,
    /// The current record's header as read, and how many of its bytes are handed on (its
    /// standard part) and were so far.
    header: [u8; MODIFIED_HEADER],
    to_hand: usize,
    handed: usize,
    /// Bytes of the current record's packet data not yet handed on.
    data_left: u64,
}

impl<R: Read> StandardRecords<R> {
    /// Reads the records from `inner`, which is past the file header.
    pub(super) fn new(inner: R, big_endian: bool) -> StandardRecords<R> {
        StandardRecords { inner, big_endian, header: [0; MODIFIED_HEADER], to_hand: 0, handed: 0, data_left: 0 }
    }

    /// Reads the next record's header as far as the file has it; 0 at the file's end.
    fn read_header(&mut self) -> std::io::Result<usize> {
        let mut got = 0;
        while got < MODIFIED_HEADER {
            match self.inner.read(&mut self.header[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }
}

impl<R: Read> Read for StandardRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.handed == self.to_hand && self.data_left > 0 {
            let want = buf.len().min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut buf[..want])?;
            self.data_left -= n as u64;
            return Ok(n);
        }
        if self.handed == self.to_hand {
            let got = self.read_header()?;
            (self.handed, self.data_left) = (0, 0);
            // A header the file ends inside is handed on short of a whole standard header
            // (the part past it may be missing too), so that pcap-file reports it cut short.
            self.to_hand = if got == MODIFIED_HEADER { STANDARD_HEADER } else { got.min(STANDARD_HEADER - 1) };
            if got == MODIFIED_HEADER {
                let caplen = [self.header[8], self.header[9], self.header[10], self.header[11]];
                let caplen = if self.big_endian { u32::from_be_bytes(caplen) } else { u32::from_le_bytes(caplen) };
                self.data_left = u64::from(caplen);
            }
            if self.to_hand == 0 {
                return Ok(0);
            }
        }
        let part = &self.header[self.handed..self.to_hand];
        let n = part.len().min(buf.len());
        buf[..n].copy_from_slice(&part[..n]);
        self.handed += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two little-endian records: 3 bytes of data (ifindex 2, protocol 0x0800, packet type
    /// 4, padding 0xee in the header), then none.
    #[rustfmt::skip]
    const MODIFIED: [u8; 51] = [
        1, 0, 0, 0,  7, 0, 0, 0,  3, 0, 0, 0,  60, 0, 0, 0,  2, 0, 0, 0,  0x00, 0x08, 4, 0xee,
        0xaa, 0xbb, 0xcc,
        2, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  9, 0, 0, 0,  0x00, 0x08, 0, 0,
    ];

    fn read_all(bytes: &[u8], chunk: usize) -> Vec<u8> {
        let mut records = StandardRecords::new(bytes, false);
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = records.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn record_headers_lose_their_eight_further_bytes() {
        let mut standard = Vec::new();
        standard.extend_from_slice(&MODIFIED[..16]);
        standard.extend_from_slice(&MODIFIED[24..27]);
        standard.extend_from_slice(&MODIFIED[27..43]);
        // Read whole, and a byte at a time (a pipe hands over what it has).
        assert_eq!(read_all(&MODIFIED, 4096), standard);
        assert_eq!(read_all(&MODIFIED, 1), standard);
    }

    /// A file that ends inside a record header, its further bytes included, hands on less
    /// than a standard header: pcap-file says the file is cut short, as tshark does.
    #[test]
    fn a_header_cut_short_stays_short_of_a_standard_one() {
        for cut in [27 + 5, 27 + 16, 27 + 20] {
            let out = read_all(&MODIFIED[..cut], 4096);
            assert_eq!(out.len(), 19 + (cut - 27).min(15), "cut at {cut}");
        }
    }
}
