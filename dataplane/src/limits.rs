//! Bounds on everything transitd reads or builds from input, so that no file, flag or
//! configuration can make it run out of memory, stack or time before it says no.
//!
//! Each bound is checked before the allocation or work it protects, and the refusal names
//! the key (with `file:line:col`) or the flag and the bound. `docs/configuration.md` lists
//! them ("Limits"), and a test holds that list to these constants. Bounds of the rule
//! language itself live in the classifier ([`classifier::parse::MAX_NESTING`],
//! [`classifier::compile::MAX_BOXES_PER_RULE`], [`classifier::table::MAX_BOXES_PER_TABLE`]).

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

/// Largest configuration file (and largest etcd prefix, all keys together).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Largest plan file (`plan = "..."`, `transitd plan --previous`).
pub const MAX_PLAN_BYTES: u64 = 32 << 20;
/// Largest geofeed `transitd geofeed --check` reads.
pub const MAX_GEOFEED_BYTES: u64 = 64 << 20;
/// Largest list file (`[[list]] file = "..."`).
pub const MAX_LIST_BYTES: u64 = 64 << 20;
/// Lists in one configuration (`[[list]]`).
pub const MAX_LISTS: usize = 1024;
/// Members of one list, inline and from its file together.
pub const MAX_LIST_MEMBERS: usize = 4_000_000;
/// Members of all the lists of one configuration together, and the bytes of their files:
/// each list is bounded on its own, but a thousand of them at their bound were tens of
/// gigabytes (an OOM on reload).
pub const MAX_LIST_MEMBERS_PER_CONFIG: usize = 8_000_000;
/// See [`MAX_LIST_MEMBERS_PER_CONFIG`].
pub const MAX_LIST_BYTES_PER_CONFIG: u64 = 256 << 20;
/// Customers in one configuration (their ids are 16 bits).
pub const MAX_CUSTOMERS: usize = 65_535;
/// Tunnels in one configuration (their ids are 16 bits).
pub const MAX_TUNNELS: usize = 65_535;
/// Distinct tunnel remote addresses of one family: half the XDP program's map (65,536), for
/// the same reason as prefixes.
pub const MAX_REMOTES_PER_FAMILY: usize = 32_768;
/// Boxes of all the rule lists of one configuration together (each list is bounded at
/// `classifier::table::MAX_BOXES_PER_TABLE`); what they take in memory is bounded by
/// [`MAX_TABLE_BYTES_PER_CONFIG`].
pub const MAX_BOXES_PER_CONFIG: usize = 1 << 20;
/// Bytes of the lookup arrays of all the rule lists of one configuration together: boxes
/// that overlap everywhere keep up to about 3 KB each, so the box bound alone let a
/// configuration's tables take gigabytes. A list is refused while it is built, as it
/// passes this, not after.
pub const MAX_TABLE_BYTES_PER_CONFIG: usize = 1 << 30;
/// Expansion steps all the rules of one configuration may spend compiling (each rule is
/// bounded by [`classifier::compile::MAX_EXPANSION_STEPS`], a tenth of a second): a hundred
/// rules' worth, seconds. Tens of thousands of rules each at its own bound would hold a
/// reload (which waits for the build) for hours. ClassBench's 10,000-rule sets spend well
/// under a hundredth of it.
pub const MAX_COMPILE_STEPS_PER_CONFIG: usize = 100 * classifier::compile::MAX_EXPANSION_STEPS;
/// Customer prefixes of one address family, all customers together: half the XDP
/// program's map of owned prefixes (65,536), since a reload holds the old and the new ones
/// at once while it swaps.
pub const MAX_PREFIXES_PER_FAMILY: usize = 32_768;
/// Rules in one list (`[[dos.rule]]`, a customer's firewall, egress or DoS rules).
pub const MAX_RULES_PER_LIST: usize = 65_536;
/// Rate-limit buckets (`[[dos.bucket]]`).
pub const MAX_BUCKETS: usize = 256;
/// Bucket keys kept per worker, all buckets together (`table_size` × buckets): 16 bytes
/// each, so at most 256 MiB per worker.
pub const MAX_BUCKET_KEYS: usize = 1 << 24;
/// TCP connections a worker tracks at most (`[tcp_protection] table_size`; 16 bytes each:
/// 256 MiB).
pub const MAX_TCP_FLOWS: u32 = 1 << 24;
/// Soft-unicast egress addresses: the XDP program's `egress_addrs` map holds two slots of
/// 16,384 in one hash table, and while a reload writes the idle slot it holds three plans'
/// addresses at once (the running one, the idle slot's old one, the new one): 3 × 8,192 fit.
pub const MAX_EGRESS_ADDRESSES: u64 = 8_192;
/// Soft-unicast slices, all addresses together (the XDP program's `egress_owners` map).
pub const MAX_EGRESS_SLICES: u64 = 16_384 * 32;
/// UMEM frames per queue (`--frames`): at most 4 GiB of UMEM with 4096-byte frames.
pub const MAX_UMEM_FRAMES: u32 = 1 << 20;
/// Fewest UMEM frames per queue: a few batches in flight each way.
pub const MIN_UMEM_FRAMES: u32 = 256;
/// Soft-unicast servers and data centres together: half the XDP program's `backbone_peers`
/// map (4,096 backbone addresses), which holds the old and the new fleet during a reload.
pub const MAX_FLEET_MEMBERS: usize = 2048;
/// Entries in `--queues` and `--cores` (the kernel's CPU set holds 1024 CPUs).
pub const MAX_LIST_ENTRIES: usize = 1024;
/// Longest duration a flag in seconds takes (`--stats-interval`, `--watch-interval`,
/// `stats --interval`): a day.
pub const MAX_SECONDS_FLAG: u64 = 86_400;
/// Shortest `stats --interval`: ten of the workers' counter publications
/// ([`crate::worker::PUBLISH_EVERY`]). Each reading sees counters up to one publication old,
/// so a rate counts up to a publication's traffic more or less than the interval's: 10 % at
/// this interval, and more below it (two readings within one publication show none at all).
pub const MIN_STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `--idle-sleep-us`: a second.
pub const MAX_IDLE_SLEEP_US: u64 = 1_000_000;
/// Largest `--napi-defer`: the kernel's own bound on `napi_defer_hard_irqs` (`S32_MAX`).
/// Kernels before its 2024 fix ("net: napi: Make napi_defer_irqs u32") kept the value in an
/// `int`, so a larger one read back negative and deferred nothing; later ones refuse it
/// (ERANGE), which a run found only when it came to write it.
pub const MAX_NAPI_DEFER: u32 = i32::MAX as u32;
/// Fewest bytes `--capture-snaplen` keeps of a frame: below it a frame's headers are cut.
pub const MIN_CAPTURE_SNAPLEN: usize = 64;
/// Most bytes `--capture-snaplen` keeps of a frame: the largest frame size.
pub const MAX_CAPTURE_SNAPLEN: usize = 65_536;
/// Smallest `--capture-max-size`: below a kilobyte the file's own headers and one short
/// frame do not fit, so every frame would be counted over the bound and none kept.
pub const MIN_CAPTURE_BYTES: u64 = 1_000;
/// Errors reported for one configuration: the first ones are what a person reads.
pub const MAX_REPORTED_ERRORS: usize = 100;
/// Longest name (customer, tunnel, rule, bucket, server, data centre).
pub const MAX_NAME_LEN: usize = 64;

/// Why a file could not be read within its bound.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file holds more than the bound (or is endless, as `/dev/zero`).
    #[error("larger than {limit} bytes, the most transitd reads as {what}")]
    TooLarge {
        /// What the file was read as.
        what: &'static str,
        /// The bound.
        limit: u64,
    },
    /// A FIFO or a socket: what it holds depends on a writer, who may never come.
    #[error("a FIFO or socket, not a file transitd reads as {what}")]
    NotAFile {
        /// What the file was to be read as.
        what: &'static str,
    },
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text: invalid bytes at line {line}, column {col}")]
    NotUtf8 {
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based column (characters) of the first invalid byte.
        col: usize,
    },
}

/// Reads at most `limit` bytes of `path` as UTF-8 text; a longer (or endless) file is
/// refused after `limit + 1` bytes, whatever its metadata says. A FIFO is refused: this is
/// how a running edge reads (a reload, the files a configuration names).
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    read_text_from(path, limit, what, false)
}

/// [`read_text`] for a command that reads its input once and exits (`check`, `match`,
/// `plan`, ...): a FIFO is read too, waiting for its writer as `cat` would, so that
/// `etcdctl get ... | transitd check --config /dev/stdin` works.
pub fn read_text_once(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    read_text_from(path, limit, what, true)
}

fn read_text_from(path: &Path, limit: u64, what: &'static str, fifo_ok: bool) -> Result<String, ReadError> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    // Opened without blocking: a FIFO with no writer would hold a reload's build (and every
    // reload after it) for good. Files and devices read the same either way.
    let flags = if fifo_ok { 0 } else { libc::O_NONBLOCK };
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_socket() || (kind.is_fifo() && !fifo_ok) {
        return Err(ReadError::NotAFile { what });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { what, limit });
    }
    // A UTF-8 byte order mark (U+FEFF) may start a file that Windows tools wrote: it marks
    // the encoding and is no text of it, so a list's first member does not begin with it.
    // Positions are then the ones an editor shows, which does not count it either.
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
    }
    utf8_text(bytes).map_err(|(line, col)| ReadError::NotUtf8 { line, col })
}

/// U+FEFF in UTF-8.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// `bytes` as UTF-8 text, or the 1-based line and column (characters) of its first invalid
/// byte.
pub fn utf8_text(bytes: Vec<u8>) -> Result<String, (usize, usize)> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The valid prefix is UTF-8 by definition.
        let before = std::str::from_utf8(valid).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
    })
}

/// A name as it appears in metrics, logs, reports and drop captures: 1 to
/// [`MAX_NAME_LEN`] ASCII letters, digits, `_`, `-` and `.`. `Err` says what is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(c) => Err(format!("holds {c:?}; names use only ASCII letters, digits, `_`, `-` and `.`")),
        None => Ok(()),
    }
}

/// `text` cut to at most `max` characters for quoting in an error, with `…` if cut.
pub fn excerpt(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_files_are_refused_at_the_bound() {
        let e = read_text(Path::new("/dev/zero"), 1000, "a configuration").unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 1000, .. }), "{e}");
    }

    /// A FIFO nobody writes to would block the open (and a reload's build) for good.
    #[test]
    fn fifos_are_refused_without_waiting_for_a_writer() {
        let dir = std::env::temp_dir().join(format!("transitd-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
        let e = read_text(&path, 1000, "a list").unwrap_err();
        assert_eq!(e.to_string(), "a FIFO or socket, not a file transitd reads as a list");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = std::env::temp_dir().join(format!("transitd-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, b"[server]\nanycast = \"\xff\"\n").unwrap();
        let e = read_text(&path, 1000, "a configuration").unwrap_err();
        assert_eq!(e.to_string(), "not UTF-8 text: invalid bytes at line 2, column 12");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file starting with a byte order mark reads as the text after it, with positions
    /// counted after it too; a U+FEFF anywhere else is text (and a list says it is no address).
    #[test]
    fn a_byte_order_mark_starting_a_file_is_not_its_text() {
        let dir = std::env::temp_dir().join(format!("transitd-bom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.txt");
        std::fs::write(&path, "\u{feff}203.0.113.0/24\n\u{feff}198.51.100.0/24\n").unwrap();
        let text = read_text(&path, 1000, "a list").unwrap();
        assert_eq!(text, "203.0.113.0/24\n\u{feff}198.51.100.0/24\n");
        std::fs::write(&path, b"\xef\xbb\xbfa\xff").unwrap();
        let e = read_text(&path, 1000, "a list").unwrap_err();
        assert_eq!(e.to_string(), "not UTF-8 text: invalid bytes at line 1, column 2");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_a_safe_set() {
        assert!(check_name("acme-gre.1_b").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("ev\"il").unwrap_err().contains("'\"'"));
        assert!(check_name("a\nb").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ab", 3), "ab");
        assert_eq!(excerpt("ééé", 2), "éé…");
    }
}
