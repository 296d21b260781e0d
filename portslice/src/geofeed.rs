//! RFC 8805 geofeeds: generated from a plan's egress ranges, and parsed back with validation.
//!
//! A feed is CSV (RFC 4180, as RFC 8805 §2.1 says), one entry per line:
//! `ip_prefix,alpha2code,region,city,postal_code`, a comment running from any `#` to the end
//! of its line (§2.1); a field holding a comma or a quote is quoted. Generation groups
//! contiguous addresses with the same location (country, region, city; the trust class is not
//! published) and writes each group as the fewest prefixes that cover it exactly. The postal
//! code field is deprecated (RFC 8805 §2.1.1.5) and always written empty. Checking reads each
//! line as a strict CSV reader does (blanks are part of a field) and says what RFC 8805 makes
//! an error apart from what it advises against (a warning).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::plan::EgressRange;

/// One feed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The prefix.
    pub addr: IpAddr,
    /// Its length.
    pub prefix_len: u8,
    /// ISO 3166-1 alpha-2 (or `ZZ`, which RFC 8805 §2.1.2 says feeds once used for none),
    /// uppercase; empty when not given.
    pub country: String,
    /// ISO 3166-2 region (`GB-ENG`); empty when not given.
    pub region: String,
    /// City; empty when not given.
    pub city: String,
}

/// A line that does not follow RFC 8805 or, among [`Checked::warnings`], one that follows
/// it but not what it advises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{col}: {reason}")]
pub struct GeofeedError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters) where the field at fault starts; 1 for the whole line.
    pub col: usize,
    /// What is wrong.
    pub reason: String,
}

/// A feed as `geofeed --check` reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The entries of the lines without errors, in line order.
    pub entries: Vec<Entry>,
    /// One for each line RFC 8805 refuses, in line order.
    pub errors: Vec<GeofeedError>,
    /// What RFC 8805 allows but advises against (a SHOULD), or a reader would take otherwise
    /// than the writer likely meant, in line order; a line with an error has none.
    pub warnings: Vec<GeofeedError>,
}

/// The fewest prefixes that cover `[lo, hi]` exactly.
pub fn range_to_prefixes(lo: u32, hi: u32) -> Vec<(u32, u8)> {
    let mut out = Vec::new();
    let mut start = u64::from(lo);
    let end = u64::from(hi);
    while start <= end {
        // The largest aligned block that starts at `start` and stays within `end`.
        let mut size = if start == 0 { 1u64 << 32 } else { 1u64 << start.trailing_zeros() };
        while start + size - 1 > end {
            size >>= 1;
        }
        out.push((start as u32, (32 - size.trailing_zeros()) as u8));
        start += size;
    }
    out
}

/// The feed for `ranges`: contiguous addresses with the same location merged, each run as
/// the fewest prefixes.
pub fn generate(ranges: &[EgressRange]) -> String {
    let mut sorted: Vec<&EgressRange> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.bounds());
    // ISO 3166 codes are upper case in a feed; a configuration may write them either way,
    // and `gb-eng` beside `GB-ENG` is one location.
    let mut runs: Vec<(u32, u32, [String; 3])> = Vec::new();
    for r in sorted {
        let (lo, hi) = r.bounds();
        let loc = [r.tags.country.to_ascii_uppercase(), r.tags.region.to_ascii_uppercase(), r.tags.city.clone()];
        match runs.last_mut() {
            Some(last) if last.2 == loc && u64::from(last.1) + 1 == u64::from(lo) => last.1 = hi,
            _ => runs.push((lo, hi, loc)),
        }
    }
    let mut out = String::from("# RFC 8805 geofeed: ip_prefix,alpha2code,region,city,postal_code\n");
    for (lo, hi, [country, region, city]) in runs {
        let city = csv_field(&city);
        for (net, len) in range_to_prefixes(lo, hi) {
            out.push_str(&format!("{}/{len},{country},{region},{city},\n", Ipv4Addr::from(net)));
        }
    }
    out
}

/// `field` as a CSV field (RFC 4180 §2): quoted, its quotes doubled, when it holds a comma
/// or a quote. (Line breaks, which would need quoting too, and `#`, which starts a comment
/// quoted or not, [`check_text`] refuses.)
fn csv_field(field: &str) -> Cow<'_, str> {
    if field.contains([',', '"']) { format!("\"{}\"", field.replace('"', "\"\"")).into() } else { field.into() }
}

/// The ISO 3166-1 alpha-2 codes assigned to countries (Debian's iso-codes 4.15.0, which the
/// tests hold this to), sorted, and `XK`: ISO leaves it to users, and the geofeeds of Kosovo's
/// networks and the geolocation databases reading them use it.
const COUNTRIES: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD",
    "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
    "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE",
    "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA",
    "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK",
    "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT",
    "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS",
    "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW",
    "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "XK", "YE", "YT",
    "ZA", "ZM", "ZW",
];

/// Why `code` (either case) is not a country a feed may name: an ISO 3166-1 alpha-2 code
/// assigned to a country (RFC 8805 §2.1.1.2). `UK`, which ISO only reserves, is the usual
/// slip for `GB`. `None` when it is one.
pub fn check_country(code: &str) -> Option<String> {
    let upper = code.to_ascii_uppercase();
    if COUNTRIES.binary_search(&upper.as_str()).is_ok() {
        return None;
    }
    let hint = match upper.as_str() {
        "UK" => " (the United Kingdom is `GB`)",
        "EL" => " (Greece is `GR`)",
        _ => "",
    };
    Some(format!("{} is not an ISO 3166-1 alpha-2 code assigned to a country{hint}", quoted(code)))
}

/// Why a region is not one a feed may carry for `country` (ISO 3166-1 alpha-2, uppercase,
/// or empty): it must be an ISO 3166-2 code, `CC-XXX` with `CC` the country (RFC 8805
/// §2.1.1.3). `None` when it is (or is empty).
pub fn check_region(country: &str, region: &str) -> Option<String> {
    if region.is_empty() {
        return None;
    }
    let ok = region.to_ascii_uppercase().split_once('-').is_some_and(|(cc, sub)| {
        cc.len() == 2
            && cc.bytes().all(|b| b.is_ascii_alphabetic())
            && (country.is_empty() || cc.eq_ignore_ascii_case(country))
            && (1..=3).contains(&sub.len())
            && sub.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    (!ok).then(|| format!("{} is not an ISO 3166-2 code of country {}", quoted(region), quoted(country)))
}

/// Unicode's line and paragraph separators: mandatory line breaks (UAX #14, class BK), where
/// readers that go by Unicode end a line (Python's `str.splitlines`, editors), though CSV
/// readers and [`parse_all`] do not.
const LINE_SEPARATORS: [char; 2] = ['\u{2028}', '\u{2029}'];

/// Why free text (a city) cannot go into a feed: a control character or a Unicode line or
/// paragraph separator (a line break, to some reader, would start another entry: one feed
/// line is one entry), or a `#`: RFC 8805 §2.1, "Text from a '#' character to the end of
/// the current line is treated as a comment only", so a reader would take the city as cut
/// there (quoted, as a field never closed). `None` when it can.
pub fn check_text(text: &str) -> Option<String> {
    if text.chars().any(char::is_control) {
        return Some(format!("{} holds a control character", quoted(text.trim())));
    }
    if text.contains(LINE_SEPARATORS) {
        return Some(format!(
            "{} holds a Unicode line or paragraph separator (U+2028, U+2029), the end of a line to a reader \
             that goes by Unicode",
            quoted(text.trim())
        ));
    }
    text.contains('#').then(|| {
        format!(
            "{} holds a `#`, which starts a comment in a feed line, quoted or not (RFC 8805 §2.1)",
            quoted(text.trim())
        )
    })
}

/// Why free text (a city, a postal code) is not what RFC 8805 advises: it holds a comma.
/// RFC 8805 §2.1.1.4: "The city field, if non-empty, SHOULD be free UTF-8 text, excluding
/// the comma (',') character" (§2.1.1.5 says the same of the postal code). A SHOULD, so a
/// warning: quoted, as [`generate`] writes it, the field is CSV all the same, but a reader
/// that splits a line at every comma reads another location. `None` when it has none.
pub fn comma_warning(text: &str) -> Option<String> {
    text.contains(',').then(|| {
        format!(
            "{} holds a comma, which RFC 8805 says a city SHOULD exclude (§2.1.1.4; §2.1.1.5 a postal code)",
            quoted(text)
        )
    })
}

/// A field as quoted in an error: at most 40 characters, so that a huge field does not
/// repeat itself into the message.
fn quoted(field: &str) -> String {
    let (shown, cut) = match field.char_indices().nth(40) {
        None => (field, false),
        Some((end, _)) => (&field[..end], true),
    };
    // A control character is written as its escape (`\r`, `\u{1b}`): printed as it is, a
    // carriage return or an escape sequence moves the terminal's cursor over the message
    // and the `file:line:col` before it; a line separator would break the message's line.
    let escaped = |c: char| c.is_control() || LINE_SEPARATORS.contains(&c);
    let shown: String =
        shown.chars().map(|c| if escaped(c) { c.escape_debug().to_string() } else { c.to_string() }).collect();
    if cut { format!("`{shown}…` ({} bytes)", field.len()) } else { format!("`{shown}`") }
}

/// Parses a feed. Comments (from a `#` to the end of its line) and blank lines are skipped;
/// what is left of every other line must be one record of CSV (RFC 4180): a valid prefix (no
/// host bits set; a bare address is a /32 or /128) that no earlier line has, a country ISO
/// 3166-1 assigns (or `ZZ`) if any, a region of the form `CC-XXX` whose `CC` is the country,
/// and none of these three with blanks around it. Fields past the fifth are not read. The
/// first error, if any; [`parse_all`] has the warnings too.
pub fn parse(text: &str) -> Result<Vec<Entry>, GeofeedError> {
    let checked = parse_all(text);
    match checked.errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(checked.entries),
    }
}

/// [`parse`], going on past errors: the entries of the good lines, an error for each bad
/// one, and the warnings, in line order (what `geofeed --check` reports). `text` is the
/// file's text: a byte order mark starting the file is its reader's to drop, as a reader
/// taking the encoding from it drops one (Python's `utf-8-sig`), and a U+FEFF left at the
/// start of a line, the first too, is the prefix's to a consumer, so an error.
pub fn parse_all(text: &str) -> Checked {
    let mut checked = Checked::default();
    // RFC 8805 §2.1.3: "Duplicate IP address or prefix entries MUST be considered an error,
    // and consumer implementations SHOULD log the repeated entries for further administrative
    // review." The same network is a duplicate however written (`192.0.2.1` is
    // `192.0.2.1/32`): "consumers MUST nevertheless accept all valid string representations".
    // Nesting is not: "Multiple entries that constitute nested prefixes are permitted.
    // Consumers SHOULD consider the entry with the longest matching prefix (i.e., the 'most
    // specific') to be the best matching entry for a given IP address."
    let mut first_line: HashMap<(IpAddr, u8), usize> = HashMap::new();
    let mut line_warnings = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        line_warnings.clear();
        let parsed = parse_line(raw, &mut line_warnings).and_then(|entry| {
            let Some(entry) = entry else { return Ok(None) };
            let prefix = (entry.addr, entry.prefix_len);
            match first_line.get(&prefix) {
                Some(first) => Err((
                    0,
                    format!(
                        "`{}/{}` is a duplicate of line {first} (the same prefix, however written): RFC 8805 \
                         §2.1.3 makes it an error",
                        prefix.0, prefix.1
                    ),
                )),
                None => {
                    first_line.insert(prefix, line);
                    Ok(Some(entry))
                }
            }
        });
        match parsed {
            Ok(entry) => {
                checked.entries.extend(entry);
                let said =
                    line_warnings.drain(..).map(|(at, reason)| GeofeedError { line, col: column(raw, at), reason });
                checked.warnings.extend(said);
            }
            Err((at, reason)) => checked.errors.push(GeofeedError { line, col: column(raw, at), reason }),
        }
    }
    checked
}

/// The 1-based column (characters) of byte `at` of `line`.
fn column(line: &str, at: usize) -> usize {
    line.get(..at).map_or(1, |before| before.chars().count() + 1)
}

/// One field of a line: its text (a quoted field's quotes removed, each doubled quote made
/// one) and the byte of the line where it starts.
struct Field<'a> {
    text: Cow<'a, str>,
    at: usize,
}

/// Where (a byte of the line) and why a line is not one record of CSV.
struct Malformed {
    at: usize,
    why: &'static str,
}

/// The [`Malformed`] reason of a quoted field the line ends in.
const QUOTE_NOT_CLOSED: &str = "a quote is not closed";

/// The fields of `line` as one record of CSV, read as strict readers read it (Python's `csv`
/// with `strict=True`): a quote never closed, or anything but a comma or the end after a
/// closing quote, a blank included, is an error, after which nothing more is read. (The `csv`
/// crate read both leniently, as if the line were well formed; a feed's checker must not.)
/// A field is quoted only when its first byte is a quote: a quote further on, after a blank
/// too, is text, as those readers take it. Blanks stay in the field: RFC 4180 §2, "Spaces
/// are considered part of a field and should not be ignored." One line is one record: a
/// field quoted across lines is not something a feed has, and a carriage return outside
/// quotes is refused, as those readers refuse it (the one ending a line is not the line's).
struct CsvFields<'a> {
    line: &'a str,
    /// Where the next field starts; `None` once the line is read.
    next: Option<usize>,
}

fn csv_fields(line: &str) -> CsvFields<'_> {
    CsvFields { line, next: Some(0) }
}

impl<'a> Iterator for CsvFields<'a> {
    type Item = Result<Field<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.next.take()?;
        let (line, b) = (self.line, self.line.as_bytes());
        // Commas and quotes are ASCII, so every index below is a character boundary.
        let (text, end) = if b.get(at) == Some(&b'"') {
            // The closing quote is the first one not doubled.
            let mut close = at + 1;
            loop {
                match (b.get(close), b.get(close + 1)) {
                    (None, _) => return Some(Err(Malformed { at, why: QUOTE_NOT_CLOSED })),
                    (Some(b'"'), Some(b'"')) => close += 2,
                    (Some(b'"'), _) => break,
                    _ => close += 1,
                }
            }
            let inner = &line[at + 1..close];
            let text = if inner.contains('"') { Cow::Owned(inner.replace("\"\"", "\"")) } else { Cow::Borrowed(inner) };
            (text, close + 1)
        } else {
            // A carriage return is a line break to CSV readers, not text (RFC 4180 §2 quotes
            // a field holding one): they end the record there, or refuse the line.
            let stop = b.get(at..).and_then(|rest| rest.iter().position(|&c| c == b',' || c == b'\r'));
            let end = stop.map_or(b.len(), |n| at + n);
            (Cow::Borrowed(&line[at..end]), end)
        };
        match b.get(end) {
            None => {}
            Some(b',') => self.next = Some(end + 1),
            Some(b'\r') => return Some(Err(Malformed { at: end, why: "a carriage return outside quotes" })),
            Some(_) => return Some(Err(Malformed { at: end, why: "text after a closing quote" })),
        }
        Some(Ok(Field { text, at }))
    }
}

/// The fields of a feed line (RFC 8805 §2.1: `ip_prefix,alpha2code,region,city,postal_code`).
const FIELDS: usize = 5;

/// Whether a field has blanks at either end.
fn has_blanks(field: &str) -> bool {
    field.trim() != field
}

/// One line: an entry, nothing (a comment, a blank line) or where (a byte of `raw`) and why
/// it is no entry. What RFC 8805 advises against goes to `warnings`, placed alike, in the
/// order of the line.
fn parse_line(raw: &str, warnings: &mut Vec<(usize, String)>) -> Result<Option<Entry>, (usize, String)> {
    if raw.starts_with('\u{feff}') {
        return Err((0, "a byte order mark inside the feed (only the file's start may have one)".into()));
    }
    // RFC 8805 §2.1: "Text from a '#' character to the end of the current line is treated as a
    // comment only and is similarly ignored (note that this does not strictly follow
    // [RFC4180], which has no support for comments)". Any `#`, then, after an entry or inside
    // a field, quoted or not: the comment goes before the rest is read as CSV.
    let (entry, comment_at) = match raw.split_once('#') {
        Some((entry, _)) => (entry, Some(entry.len())),
        None => (raw, None),
    };
    if entry.trim().is_empty() {
        return Ok(None);
    }
    // Carriage returns that end the line (`\r\r\n`, or a last line without `\n`) end it for
    // CSV readers too.
    let f = read_fields(raw, entry.trim_end_matches('\r'), comment_at)?;
    // RFC 4180 §2: "Spaces are considered part of a field and should not be ignored." So a
    // strict reader hands ` US ` on, which is no code, and the entry is lost (RFC 8805 §2.1.3:
    // an entry whose prefix "fails to parse correctly MUST be discarded", one whose optional
    // fields fail to parse "SHOULD be discarded"): an error. In free text, a warning below.
    for (k, what) in [(0, "an IP prefix"), (1, "an ISO 3166-1 code"), (2, "an ISO 3166-2 code")] {
        if has_blanks(f.get(k)) {
            return Err((
                f.at(k),
                format!(
                    "{} has blanks around it, which RFC 4180 §2 makes part of the field: not {what}",
                    quoted(f.get(k))
                ),
            ));
        }
    }
    let (addr, prefix_len) = read_prefix(&f, warnings)?;
    let (country, region) = read_location(&f, warnings)?;
    warn_of_city(&f, warnings);
    warn_of_postal_code(&f, warnings);
    warn_of_field_count(&f, warnings);
    Ok(Some(Entry { addr, prefix_len, country, region, city: f.get(3).to_string() }))
}

/// The fields of a feed line's entry, by position: the first [`FIELDS`] of them, and where a
/// sixth starts and how many follow the fifth.
struct Fields<'a> {
    kept: Vec<Field<'a>>,
    /// Where the entry ends (a byte of the line): where a field it lacks would start.
    end: usize,
    /// Where the sixth field starts, and how many there are past the fifth.
    extra: Option<(usize, usize)>,
}

impl Fields<'_> {
    /// Field `k`'s text, unquoted; empty where the line lacks it.
    fn get(&self, k: usize) -> &str {
        self.kept.get(k).map_or("", |f| f.text.as_ref())
    }

    /// Where field `k` starts, a byte of the line.
    fn at(&self, k: usize) -> usize {
        self.kept.get(k).map_or(self.end, |f| f.at)
    }
}

/// The fields of `entry`, the part of line `raw` before its comment (which starts at byte
/// `comment_at`), read as CSV. Every field is read, so that a malformed one past the fifth is
/// said too, but only five are kept: a line of a million commas is not a million strings.
fn read_fields<'a>(raw: &str, entry: &'a str, comment_at: Option<usize>) -> Result<Fields<'a>, (usize, String)> {
    let mut kept: Vec<Field<'_>> = Vec::with_capacity(FIELDS);
    let mut extra: Option<(usize, usize)> = None;
    for field in csv_fields(entry) {
        let field = field.map_err(|m| {
            // A `#` inside quotes cut the field short: said, or the quote seems never written.
            let cut = match comment_at {
                Some(c) if m.why == QUOTE_NOT_CLOSED => {
                    format!(" (the `#` at column {} starts a comment: RFC 8805 §2.1)", column(raw, c))
                }
                _ => String::new(),
            };
            (m.at, format!("not CSV: {}{cut}", m.why))
        })?;
        if kept.len() < FIELDS {
            kept.push(field);
        } else {
            extra.get_or_insert((field.at, 0)).1 += 1;
        }
    }
    Ok(Fields { kept, end: entry.len(), extra })
}

/// The entry's prefix (its first field): an address and a length with no host bits set. IPv6
/// not written as RFC 5952 writes it is said in `warnings`.
fn read_prefix(f: &Fields<'_>, warnings: &mut Vec<(usize, String)>) -> Result<(IpAddr, u8), (usize, String)> {
    let (addr_text, len_text) = match f.get(0).split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (f.get(0), None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| (f.at(0), format!("{} is not an IP prefix", quoted(f.get(0)))))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len_text {
        None => max,
        // Digits only: `u8`'s parser takes a leading `+` (`/+24`).
        Some(l) => Some(l)
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u8>().ok())
            .filter(|l| *l <= max)
            .ok_or_else(|| (f.at(0), format!("bad prefix length in {}", quoted(f.get(0)))))?,
    };
    let host_bits_set = match addr {
        IpAddr::V4(a) => u32::from(a) & u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0) != 0,
        IpAddr::V6(a) => u128::from(a) & u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0) != 0,
    };
    if host_bits_set {
        return Err((f.at(0), format!("{} has host bits set", quoted(f.get(0)))));
    }
    // RFC 8805 §2.1.3: "While publishers SHOULD follow [RFC5952] for IPv6 prefix fields,
    // consumers MUST nevertheless accept all valid string representations." Rust writes an
    // address as RFC 5952 §4 does (lower case, no leading zeros, the first longest run of zero
    // fields as `::`) and an IPv4-mapped one as §5 recommends (`::ffff:192.0.2.0`); other text
    // with an IPv4 address in it is mixed notation, which §5 leaves to the writer.
    if let IpAddr::V6(v6) = addr {
        let canonical = v6.to_string();
        if addr_text != canonical && !addr_text.contains('.') {
            let written = if len_text.is_some() { format!("{canonical}/{prefix_len}") } else { canonical };
            let why = format!(
                "{} is not IPv6 as RFC 5952 writes it, which RFC 8805 §2.1.3 says a publisher SHOULD \
                 follow: `{written}`",
                quoted(f.get(0))
            );
            warnings.push((f.at(0), why));
        }
    }
    Ok((addr, prefix_len))
}

/// The entry's country and region (its second and third fields), upper case: a country not
/// in ISO 3166-1, or a region not of its country, is an error; `ZZ`, and a place under it,
/// are said in `warnings`.
fn read_location(f: &Fields<'_>, warnings: &mut Vec<(usize, String)>) -> Result<(String, String), (usize, String)> {
    let country = f.get(1).to_ascii_uppercase();
    if country == "ZZ" {
        // RFC 8805 §2.1.2: a prefix with no location has every location field empty, and
        // "Historically, the user-assigned alpha2code identifier of "ZZ" has been used for this
        // same purpose. This is not necessarily preferred": a reader holding the field to ISO
        // 3166-1 (§2.1.1.2) may discard the entry, and with it the withdrawal it meant.
        let why = format!(
            "{} is the user-assigned code once used for no location; RFC 8805 §2.1.2 prefers every location \
             field left empty",
            quoted(f.get(1))
        );
        warnings.push((f.at(1), why));
        // A place under "no location" says two things; a reader takes one of them.
        if let Some(k) = [2, 3].into_iter().find(|&k| !f.get(k).is_empty()) {
            let what = if k == 2 { "region" } else { "city" };
            let why = format!("{} is a {what} under `ZZ`, which says the prefix has no location", quoted(f.get(k)));
            warnings.push((f.at(k), why));
        }
    } else if let Some(why) = check_country(f.get(1)).filter(|_| !country.is_empty()) {
        return Err((f.at(1), why));
    }
    let region = f.get(2).to_ascii_uppercase();
    if let Some(why) = check_region(&country, &region) {
        return Err((f.at(2), why));
    }
    Ok((country, region))
}

/// Says in `warnings` what about the entry's city (its fourth field) readers may take
/// otherwise than meant: free text may hold blanks (`New York`), at its ends too, but readers
/// then publish ` London` beside `London`; a comma; a control character or line separator.
fn warn_of_city(f: &Fields<'_>, warnings: &mut Vec<(usize, String)>) {
    let city = f.get(3);
    if has_blanks(city) {
        let why = format!("{} has blanks around it, which RFC 4180 §2 makes part of the city", quoted(city));
        warnings.push((f.at(3), why));
    }
    if let Some(why) = comma_warning(city) {
        warnings.push((f.at(3), why));
    }
    // A city with a control character or a line separator in it (a quoted carriage return, a
    // NUL): CSV to a strict reader, but a reader that splits the feed into lines first, or
    // stops at a NUL, reads another entry or none. `generate` writes no such city (and a `#`
    // cannot be in this one: it started a comment).
    if let Some(why) = check_text(city) {
        warnings.push((f.at(3), why));
    }
}

/// Says in `warnings` that the entry has a postal code (its fifth field). RFC 8805 §2.1.1.5:
/// "The use of this field is deprecated; ... new feeds SHOULD NOT include this field due to
/// the granularity of this information", and §4: "Such specific Postal Code values MUST NOT
/// be published in geofeeds without the express consent of the parties being located". One
/// of blanks only is most likely a blank before a comment (`...,London, # office`), which is
/// no comment's but the field's.
fn warn_of_postal_code(f: &Fields<'_>, warnings: &mut Vec<(usize, String)>) {
    let postal = f.get(4);
    if !postal.is_empty() {
        let why = if postal.trim().is_empty() {
            format!("{} has blanks around it, which RFC 4180 §2 makes part of the postal code", quoted(postal))
        } else {
            format!(
                "{}: RFC 8805 §2.1.1.5 deprecates the postal code, which new feeds SHOULD NOT include (§4: a \
                 specific one MUST NOT be published without the consent of those it locates)",
                quoted(postal)
            )
        };
        warnings.push((f.at(4), why));
    }
}

/// Says in `warnings` a line of other than [`FIELDS`] fields. RFC 8805 §2.1: "The IP prefix
/// field is REQUIRED, all others are OPTIONAL (can be empty), though the requisite minimum
/// number of commas SHOULD be present." §2.1.3: "a parser MUST ignore any fields beyond those
/// it expects", and none is in use (§7): more is a slip (a comma not quoted, most likely),
/// the entry standing on the first five.
fn warn_of_field_count(f: &Fields<'_>, warnings: &mut Vec<(usize, String)>) {
    if f.kept.len() < FIELDS {
        let why = format!(
            "only {} of the {FIELDS} fields `ip_prefix,alpha2code,region,city,postal_code`: RFC 8805 §2.1 says \
             their commas SHOULD all be present",
            f.kept.len()
        );
        warnings.push((f.end, why));
    }
    if let Some((sixth, more)) = f.extra {
        let why = format!(
            "{} fields: RFC 8805 §2.1.3 has a reader ignore those past the fifth, and no extension uses them (§7)",
            FIELDS + more
        );
        warnings.push((sixth, why));
    }
}
