//! Any bytes as a capture file (`replay --in`, `match -r`: captures come from customers and
//! other tools): pcap or pcapng, any link type transitd reframes. Opening and reading every
//! record never panics or reads out of bounds, each frame fits the buffer it was read into,
//! and the reader stops (an error or the end) within the records the bytes can hold.
#![no_main]

use std::io::Write as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use transitd::io::capture::{CaptureReader, Record};

/// One file per fuzzing process, rewritten for each input.
fn path() -> &'static std::path::Path {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| std::env::temp_dir().join(format!("transitd-fuzz-capture-{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let mut file = std::fs::File::create(path()).expect("a scratch file");
    file.write_all(data).expect("written");
    drop(file);
    let Ok(mut reader) = CaptureReader::open(path()) else { return };
    let mut buf = vec![0u8; 2048];
    // A record takes at least a block or record header: 12 bytes (pcapng's smallest block).
    let bound = data.len() / 12 + 1;
    for _ in 0..=bound {
        match reader.next_into(&mut buf) {
            Ok(Some(Record::Frame { len, .. })) => assert!(len <= buf.len(), "{len} bytes in {}", buf.len()),
            Ok(Some(Record::Unsupported { .. } | Record::NotAPacket { .. })) => {}
            Ok(None) | Err(_) => return,
        }
    }
    panic!("more than {bound} records from {} bytes", data.len());
});
