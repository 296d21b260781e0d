//! Any bytes as what BIRD's control socket sends (the guard and `transitd run` read its
//! greeting, then the reply to a command, from one stream): replies read one after another
//! never panic and agree with a model of BIRD's framing. A reply ends after the first line
//! (up to its newline, or the end) whose first four bytes are digits followed by a space or
//! nothing; its code is those digits, and nothing past that line is consumed. A line of
//! `MAX_REPLY_LINE` bytes without its newline is refused having read no more; a stream that
//! ends before a reply does is refused having read it all. The text kept is at most
//! `MAX_REPLY_TEXT` bytes and, where there is room, ends with the last line's words.
#![no_main]

use std::io::ErrorKind;

use libfuzzer_sys::fuzz_target;
use transitd::bgp::bird::{MAX_REPLY_LINE, MAX_REPLY_TEXT, last_reply};

/// What the model says of a reply read from the start of some bytes.
#[derive(Debug)]
enum Model {
    /// A reply whose last line ends `end` bytes in, with its code and that line's words.
    Reply { end: usize, code: String, last: String },
    /// A line too long, refused once `end` bytes are read.
    TooLong { end: usize },
    /// The bytes end before a reply does.
    Closed,
}

fn model(data: &[u8]) -> Model {
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let window = &rest[..rest.len().min(MAX_REPLY_LINE)];
        let len = window.iter().position(|&b| b == b'\n').map_or(window.len(), |i| i + 1);
        if len == MAX_REPLY_LINE && window[len - 1] != b'\n' {
            return Model::TooLong { end: at + len };
        }
        at += len;
        let text = String::from_utf8_lossy(&rest[..len]);
        let line = text.trim_end().as_bytes();
        if line.len() >= 4 && line[..4].iter().all(u8::is_ascii_digit) && line.get(4).is_none_or(|&b| b == b' ') {
            let last = String::from_utf8_lossy(line.get(5..).unwrap_or_default()).into_owned();
            return Model::Reply { end: at, code: String::from_utf8_lossy(&line[..4]).into_owned(), last };
        }
    }
    Model::Closed
}

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    // Each reply read takes at least a byte: at most one a byte, then a refusal.
    loop {
        let mut reader = &data[at..];
        let got = last_reply(&mut reader);
        let read = data.len() - at - reader.len();
        match (model(&data[at..]), got) {
            (Model::Reply { end, code, last }, Ok((got_code, text))) => {
                assert_eq!((read, got_code.as_str()), (end, code.as_str()), "the reply at {at}");
                assert!(text.len() <= MAX_REPLY_TEXT, "{} bytes of text kept", text.len());
                // Each line's words are at most three times its bytes (U+FFFD for a byte that
                // is not UTF-8), and each costs two more: all kept while that fits.
                if 5 * end <= MAX_REPLY_TEXT {
                    assert!(text.ends_with(&last), "{text:?} does not end with {last:?}");
                }
                at += end;
            }
            (Model::TooLong { end }, Err(e)) => {
                assert_eq!((e.kind(), read), (ErrorKind::InvalidData, end), "the reply at {at}: {e}");
                return;
            }
            (Model::Closed, Err(e)) => {
                assert_eq!((e.kind(), read), (ErrorKind::UnexpectedEof, data.len() - at), "the reply at {at}: {e}");
                return;
            }
            (expected, got) => panic!("the reply at {at}: the model says {expected:?}, the reader {got:?}"),
        }
    }
});
