//! RFC 8805 geofeeds: generated from a plan's egress ranges, and parsed back with validation.
//!
//! A feed is CSV (RFC 4180, as RFC 8805 §2.1 says), one entry per line:
//! `ip_prefix,alpha2code,region,city,postal_code`, with `#` comments; a field holding a
//! comma or a quote is quoted. Generation groups contiguous addresses with the same location (country,
//! region, city; the trust class is not published) and writes each group as the fewest
//! prefixes that cover it exactly. The postal code field is deprecated (RFC 8805 §2.1.1.5)
//! and always written empty.

use std::net::{IpAddr, Ipv4Addr};

use crate::plan::EgressRange;

/// One feed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The prefix.
    pub addr: IpAddr,
    /// Its length.
    pub prefix_len: u8,
    /// ISO 3166-1 alpha-2, uppercase; empty when not given.
    pub country: String,
    /// ISO 3166-2 region (`GB-ENG`); empty when not given.
    pub region: String,
    /// City; empty when not given.
    pub city: String,
}

/// A line that does not follow RFC 8805.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct GeofeedError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
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
/// or a quote. (Line breaks, which would need quoting too, [`check_text`] refuses.)
fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
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

/// Why free text (a city) cannot go into a feed: a control character (a line break would
/// start another entry). `None` when it can.
pub fn check_text(text: &str) -> Option<String> {
    text.chars().any(char::is_control).then(|| format!("{} holds a control character", quoted(text.trim())))
}

/// A field as quoted in an error: at most 40 characters, so that a huge field does not
/// repeat itself into the message.
fn quoted(field: &str) -> String {
    match field.char_indices().nth(40) {
        None => format!("`{field}`"),
        Some((end, _)) => format!("`{}…` ({} bytes)", &field[..end], field.len()),
    }
}

/// Parses a feed. Comments and blank lines are skipped; every other line must have a valid
/// prefix (no host bits set; a bare address is a /32 or /128), a two-letter country if any,
/// a region of the form `CC-XXX` whose `CC` is the country, and at most five fields. Fields
/// are CSV (RFC 4180): quoted where they hold commas.
pub fn parse(text: &str) -> Result<Vec<Entry>, GeofeedError> {
    let (entries, errors) = parse_all(text);
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(entries),
    }
}

/// [`parse`], going on past errors: the entries of the good lines and an error for each
/// bad one, in line order (what `geofeed --check` reports).
pub fn parse_all(text: &str) -> (Vec<Entry>, Vec<GeofeedError>) {
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    // A byte order mark may start the file, and nothing else: each line is read by a CSV
    // reader of its own, which would take one at the start of any line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        match parse_line(raw) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err(reason) => errors.push(GeofeedError { line: i + 1, reason }),
        }
    }
    (entries, errors)
}

/// Why `line` is not one record of CSV as strict readers read it (Python's `csv` with
/// `strict=True`): a quote never closed, or anything but a comma or the end after a closing
/// quote, a blank included. (The `csv` crate reads both leniently, as if the line were well
/// formed; a feed's checker must not.) A field is quoted only when its first byte is a
/// quote: a quote further on, after a blank too, is text, as those readers take it.
fn csv_form(line: &str) -> Option<&'static str> {
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        // Quoted only when the field's first byte is a quote (after a blank it is text).
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (None, _) => return Some("a quote is not closed"),
                    (Some(b'"'), Some(b'"')) => i += 2,
                    (Some(b'"'), _) => break,
                    _ => i += 1,
                }
            }
            i += 1;
            match b.get(i) {
                None => return None,
                Some(b',') => i += 1,
                Some(_) => return Some("text after a closing quote"),
            }
        } else {
            match b[i.min(b.len())..].iter().position(|&c| c == b',') {
                None => return None,
                Some(at) => i += at + 1,
            }
        }
    }
}

/// One line: an entry, nothing (a comment, a blank line) or why it is no entry.
fn parse_line(raw: &str) -> Result<Option<Entry>, String> {
    if raw.starts_with('\u{feff}') {
        return Err("a byte order mark inside the feed (only the file's start may have one)".into());
    }
    if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
        return Ok(None);
    }
    // One line, one record: a field quoted across lines is not something a feed has.
    if let Some(why) = csv_form(raw) {
        return Err(format!("not CSV: {why}"));
    }
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(raw.as_bytes());
    let record = match reader.records().next() {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(format!("not CSV: {e}")),
        None => return Ok(None),
    };
    let fields: Vec<&str> = record.iter().collect();
    if fields.len() > 5 {
        return Err(format!("{} fields; a feed line has at most 5", fields.len()));
    }
    let get = |k: usize| fields.get(k).copied().unwrap_or("");
    let (addr_text, len_text) = match get(0).split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (get(0), None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| format!("{} is not an IP prefix", quoted(get(0))))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len_text {
        None => max,
        // Digits only: `u8`'s parser takes a leading `+` (`/+24`).
        Some(l) => Some(l)
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u8>().ok())
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("bad prefix length in {}", quoted(get(0))))?,
    };
    let host_bits_set = match addr {
        IpAddr::V4(a) => u32::from(a) & u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0) != 0,
        IpAddr::V6(a) => u128::from(a) & u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0) != 0,
    };
    if host_bits_set {
        return Err(format!("{} has host bits set", quoted(get(0))));
    }
    let country = get(1).to_ascii_uppercase();
    if let Some(why) = check_country(get(1)).filter(|_| !country.is_empty()) {
        return Err(why);
    }
    let region = get(2).to_ascii_uppercase();
    if let Some(why) = check_region(&country, &region) {
        return Err(why);
    }
    Ok(Some(Entry { addr, prefix_len, country, region, city: get(3).to_string() }))
}
