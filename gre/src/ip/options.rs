//! IPv4 options (RFC 791 §3.1): the type numbers transitd reads (`option`) and
//! `Ipv4Options`, the one walk over a header's options that every reader of them shares.

/// IPv4 option types (RFC 791 §3.1, RFC 1108, RFC 2113) transitd reads.
pub mod option {
    /// End of option list: what follows is padding.
    pub const END: u8 = 0;
    /// No operation: one byte, between options.
    pub const NOP: u8 = 1;
    /// Record route.
    pub const RECORD_ROUTE: u8 = 7;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 68;
    /// Security (RFC 1108).
    pub const SECURITY: u8 = 130;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Stream identifier.
    pub const STREAM_ID: u8 = 136;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert (RFC 2113).
    pub const ROUTER_ALERT: u8 = 148;
}

/// One IPv4 option other than end-of-list and no-operation: its type and its bytes, the
/// type and length octets included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The option type (copied flag, class and number).
    pub kind: u8,
    /// The whole option, at least the two octets of type and length.
    pub bytes: &'a [u8],
}

impl Ipv4Option<'_> {
    /// Whether fragmentation copies the option into every fragment (the type's top bit).
    pub fn copied(&self) -> bool {
        self.kind & 0x80 != 0
    }
}

/// An IPv4 option whose length octet is missing, below 2 or past the header's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("IPv4 option runs past the header or has a length below 2")]
pub struct MalformedOption;

/// The options of an IPv4 header (the bytes past its fixed 20), in order: the one walk
/// the parser's well-formedness check, decapsulation's source-route check and the
/// fragmenter's copy share. No-operation options are skipped; the walk ends at end-of-list
/// or the header's end, and after yielding the error for a malformed option.
#[derive(Clone, Debug)]
pub struct Ipv4Options<'a> {
    rest: &'a [u8],
}

impl<'a> Ipv4Options<'a> {
    /// Walks `options`, the header past its fixed part.
    pub const fn new(options: &'a [u8]) -> Self {
        Ipv4Options { rest: options }
    }
}

impl<'a> Iterator for Ipv4Options<'a> {
    type Item = Result<Ipv4Option<'a>, MalformedOption>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, tail) = self.rest.split_first()?;
            match kind {
                option::END => {
                    self.rest = &[];
                    return None;
                }
                option::NOP => self.rest = tail,
                _ => {
                    let len = tail.first().map_or(0, |&len| usize::from(len));
                    if len < 2 || len > self.rest.len() {
                        self.rest = &[];
                        return Some(Err(MalformedOption));
                    }
                    let (bytes, rest) = self.rest.split_at(len);
                    self.rest = rest;
                    return Some(Ok(Ipv4Option { kind, bytes }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_walk_skips_nops_and_stops_at_end_of_list() {
        // NOP, NOP, a 4-byte router alert, a 7-byte record route, end of list, junk.
        let opts = [1, 1, 148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0xff, 0xff];
        let walked: Vec<_> = Ipv4Options::new(&opts).collect();
        assert_eq!(
            walked,
            [
                Ok(Ipv4Option { kind: option::ROUTER_ALERT, bytes: &opts[2..6] }),
                Ok(Ipv4Option { kind: option::RECORD_ROUTE, bytes: &opts[6..13] }),
            ]
        );
        assert!(!walked[1].unwrap().copied() && Ipv4Option { kind: option::LSRR, bytes: &[] }.copied());
    }

    #[test]
    fn options_walk_reports_a_malformed_option_once_and_ends() {
        for opts in [&[68u8][..], &[68, 1, 0, 0], &[68, 5, 0, 0], &[1, 7, 0]] {
            let walked: Vec<_> = Ipv4Options::new(opts).collect();
            assert_eq!(walked, [Err(MalformedOption)], "{opts:?}");
        }
    }
}
