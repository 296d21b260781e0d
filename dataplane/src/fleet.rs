//! Fleet configuration from etcd (`transitd run --config-etcd ENDPOINT --prefix /transitd/`):
//! the configuration file's sections stored as keys of an etcd v3 prefix, watched, and
//! assembled into one configuration that goes through the same validation and atomic swap
//! as a file, much as Magic Transit's daemons read their configuration from Quicksilver.
//!
//! Keys under the prefix:
//!
//! - `server`: everything but the customers (`[server]`, `[dos]`, `[health]`,
//!   `[soft_unicast]`, ...), as TOML;
//! - `customers/NAME`: one `[[customer]]` named NAME with its tunnels, routes and rules.
//!
//! Errors name the key: `etcd:/transitd/customers/acme:4:9: unknown tunnel`. A thread with
//! its own small async runtime (etcd-client is async) gets the prefix, hands the keys to
//! the main loop, and watches for changes; when etcd goes away it says so once, keeps
//! retrying, and the last good configuration keeps running meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::config::{ConfigError, ConfigErrors, Loaded, SourceMap, SourcePos};

/// Where the configuration lives in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSource {
    /// `http://HOST:PORT` (or `HOST:PORT`), or several, comma-separated: the cluster's
    /// members, any of which answers.
    pub endpoint: String,
    /// The key prefix, e.g. `/transitd/`.
    pub prefix: String,
}

impl EtcdSource {
    /// The members to ask, in the order given.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoint.split(',').map(str::trim).filter(|e| !e.is_empty())
    }
}

impl std::fmt::Display for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd {} prefix {}", self.endpoint, self.prefix)
    }
}

/// The keys under the prefix at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Key (whole) to value.
    pub keys: BTreeMap<String, String>,
    /// Keys whose value is not UTF-8, with the line and column of its first invalid byte
    /// (left out of `keys`: a configuration file with such bytes is refused too).
    pub not_utf8: BTreeMap<String, (usize, usize)>,
    /// The store's revision they were read at.
    pub revision: i64,
    /// Bytes read when reading stopped, the prefix holding more than a configuration may:
    /// the keys are the part read.
    pub beyond: Option<u64>,
}

impl Fetched {
    /// Whether `other` holds the same keys and values. The revision is the whole store's,
    /// which any write anywhere in etcd moves: alike by it, nothing is new.
    pub fn same_content(&self, other: &Fetched) -> bool {
        self.keys == other.keys && self.not_utf8 == other.not_utf8 && self.beyond == other.beyond
    }
}

/// The prefix holds `bytes` bytes, more than a configuration may.
fn too_large(prefix: &str, bytes: &str) -> ConfigErrors {
    let message = format!(
        "{bytes} bytes under the prefix, more than {}, the most transitd reads as a configuration",
        crate::limits::MAX_CONFIG_BYTES
    );
    ConfigErrors(vec![ConfigError::new(whole(&format!("etcd:{prefix}")), message)])
}

fn whole(name: &str) -> SourcePos {
    SourcePos { file: name.to_string(), line: 0, col: 0 }
}

/// [`assemble`] of what was read, refusing it whole if a value is not UTF-8 text. The other
/// keys' faults are said with it: one key's bytes must not hide them.
pub fn assemble_fetched(prefix: &str, fetched: &Fetched) -> Result<Loaded, ConfigErrors> {
    if let Some(read) = fetched.beyond {
        return Err(too_large(prefix, &format!("over {read}")));
    }
    if fetched.not_utf8.is_empty() {
        return assemble(prefix, &fetched.keys);
    }
    let mut errors: Vec<ConfigError> = fetched
        .not_utf8
        .iter()
        .map(|(key, &(line, col))| {
            let at = SourcePos { file: format!("etcd:{key}"), line, col };
            ConfigError::new(at, "not UTF-8 text: an invalid byte")
        })
        .collect();
    let of_unreadable_key =
        |e: &ConfigError| e.at.file.strip_prefix("etcd:").is_some_and(|k| fetched.not_utf8.contains_key(k));
    if let Err(ConfigErrors(others)) = assemble(prefix, &fetched.keys) {
        // A server key that is no text is not also missing.
        errors.extend(others.into_iter().filter(|e| !of_unreadable_key(e)));
    }
    Err(sorted_by_key(errors))
}

/// Assembles the keys under `prefix` into one configuration: the server key first, then
/// each customer key, each keeping its own name and lines in errors.
pub fn assemble(prefix: &str, keys: &BTreeMap<String, String>) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    // The server key's text once it is TOML (and holds no customer), and whether there is one.
    let (mut server, mut server_written) = (None, false);
    let mut customers = Vec::new();
    // The prefix is one configuration: the same bound as a file, checked before any parsing.
    let total: u64 = keys.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    if total > crate::limits::MAX_CONFIG_BYTES {
        return Err(too_large(prefix, &total.to_string()));
    }
    for (key, value) in keys {
        let name = format!("etcd:{key}");
        match key.strip_prefix(prefix) {
            Some("server") => {
                server_written = true;
                match parses_alone(&name, value) {
                    Ok(table) if table.contains_key("customer") => errors.push(ConfigError::new(
                        whole(&name),
                        format!("customers go in their own keys, {prefix}customers/NAME, not in the server key"),
                    )),
                    Ok(_) => server = Some((name, value.clone())),
                    Err(e) => errors.push(e),
                }
            }
            Some(rest) if rest.starts_with("customers/") => {
                let customer = &rest["customers/".len()..];
                match parses_alone(&name, value).map(|table| check_customer(customer, value, &table)) {
                    Ok(Ok(())) => customers.push((name, value.clone())),
                    Ok(Err(message)) => errors.push(ConfigError::new(whole(&name), message)),
                    Err(e) => errors.push(e),
                }
            }
            _ => errors.push(ConfigError::new(
                whole(&name),
                format!("not a transitd key: expected {prefix}server or {prefix}customers/NAME"),
            )),
        }
    }
    if !server_written {
        errors.push(ConfigError::new(
            whole(&format!("etcd:{prefix}server")),
            "missing: the server section ([server] and the other non-customer sections)",
        ));
    }
    if errors.is_empty()
        && let Some(server) = &server
    {
        let mut parts = vec![server.clone()];
        parts.extend(customers.iter().cloned());
        match crate::config::parse_source(SourceMap::joined(&parts)) {
            Ok(loaded) => return Ok(loaded),
            // The keys read alone say their faults, this one among them.
            Err(joined) => {
                let each = faults_of_each_key(Some(server), &customers);
                return Err(if each.is_empty() { joined } else { sorted_by_key(each) });
            }
        }
    }
    // Something is wrong already: what else is, in the keys that are TOML, is said with it.
    errors.extend(faults_of_each_key(server.as_ref(), &customers));
    Err(sorted_by_key(errors))
}

/// A customer key read alone: its one `[[customer]]` ([`check_customer`] has held it to one).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerKey {
    #[serde(rename = "customer")]
    _customers: Vec<crate::config::CustomerSection>,
}

/// The first fault of each key that is TOML by itself (an unknown key, a value of the wrong
/// type), each read alone as the joined text is read. toml stops at a text's first fault, so
/// read joined, one key's fault hid every other key's, and a fleet's operator found them one
/// rejected write at a time.
fn faults_of_each_key(server: Option<&(String, String)>, customers: &[(String, String)]) -> Vec<ConfigError> {
    let server = server.and_then(|(name, value)| {
        crate::config::read_as::<crate::config::ConfigFile>(&SourceMap::new(name, value)).err()
    });
    let customers = customers
        .iter()
        .filter_map(|(name, value)| crate::config::read_as::<CustomerKey>(&SourceMap::new(name, value)).err());
    server.into_iter().chain(customers).collect()
}

/// `errors` in the order of their keys (each key's name is its errors' file), as etcd lists
/// the keys; a key's own errors keep their order.
fn sorted_by_key(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by(|a, b| a.at.file.cmp(&b.at.file));
    ConfigErrors(errors)
}

/// A key's text parsed on its own. Each must be TOML by itself: joined, a string one key
/// opens and never closes would take in the next keys' text, tables and all. Its fault is
/// said as a file's is: the duplicate key named, an address told to be quoted.
fn parses_alone(name: &str, value: &str) -> Result<toml::Table, ConfigError> {
    crate::config::read_as::<toml::Table>(&SourceMap::new(name, value))
}

/// A customer key holds exactly one `[[customer]]` table (`table` is `value` parsed), named
/// as the key is. The inline form (`customer = [{ ... }]`) is refused: joined after the
/// server key, it would be a key of the server key's last table.
fn check_customer(name: &str, value: &str, table: &toml::Table) -> Result<(), String> {
    // The table header as TOML allows it: `[[ customer ]]` and `[["customer"]]` too.
    let header = |l: &str| l.replace([' ', '\t', '"', '\''], "").starts_with("[[customer]]");
    if !value.lines().any(header) {
        return Err(format!("a customer key holds one [[customer]] table (named `{name}`), written as one"));
    }
    let list = table.get("customer").and_then(|c| c.as_array());
    let only = table.len() == 1 && list.is_some_and(|l| l.len() == 1);
    if !only {
        return Err(format!("a customer key holds exactly one [[customer]] (named `{name}`) and nothing else"));
    }
    let named = list.and_then(|l| l[0].get("name")).and_then(|n| n.as_str());
    if named != Some(name) {
        return Err(format!("the key names customer `{name}` but its [[customer]] is named `{}`", named.unwrap_or("")));
    }
    Ok(())
}

/// Where the watcher leaves the newest keys for the main loop (newest wins).
pub type Slot = Arc<Mutex<Option<Fetched>>>;

pub use client::{fetch, watch};

#[cfg(feature = "etcd")]
mod client {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use etcd_client::{Client, ConnectOptions, GetOptions, WatchOptions};

    use super::{EtcdSource, Fetched, Slot};

    /// An etcd client error in one line: a gRPC status prints its code, message and its
    /// source's debug dump; the message and the innermost cause (the OS error of a failed
    /// connect) say what an operator needs.
    fn said(e: &etcd_client::Error) -> String {
        fn innermost<'a>(
            mut cause: Option<&'a (dyn std::error::Error + 'static)>,
        ) -> Option<&'a dyn std::error::Error> {
            let mut last = None;
            while let Some(c) = cause {
                last = Some(c);
                cause = c.source();
            }
            last
        }
        match e {
            etcd_client::Error::GRpcStatus(status) => match innermost(std::error::Error::source(status)) {
                Some(cause) => format!("{}: {cause}", status.message()),
                None => format!("{} ({:?})", status.message(), status.code()),
            },
            etcd_client::Error::TransportError(t) => match innermost(std::error::Error::source(t)) {
                Some(cause) => format!("{t}: {cause}"),
                None => t.to_string(),
            },
            other => other.to_string(),
        }
    }

    fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    }

    /// How often a quiet connection is pinged.
    pub(super) const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(10);

    fn options() -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            // A server that stops answering is noticed within seconds, not at the next change.
            // Not more often than every 5 s: etcd's --grpc-keepalive-min-time (5 s by
            // default) closes a connection that pings faster (every 7 s, at 2 s pings).
            .with_keep_alive(KEEP_ALIVE_EVERY, Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            // A member cut off from the majority answers keepalives but sends no events: with
            // a leader required it cancels the watch, and the watch is made again elsewhere,
            // where it would stay silent while fleet changes went unseen.
            .with_require_leader(true)
    }

    /// The largest gRPC message read from etcd: every key of the prefix together may hold a
    /// whole configuration (16 MiB), with keys and framing beside it. tonic's default of
    /// 4 MiB made a valid configuration over it unreadable, reported as etcd's failure.
    const MAX_MESSAGE_BYTES: usize = 2 * crate::limits::MAX_CONFIG_BYTES as usize;

    /// Keys read per request: a page of values of etcd's largest request (1.5 MiB unless
    /// `--max-request-bytes` says otherwise) stays far below [`MAX_MESSAGE_BYTES`].
    const PAGE_KEYS: i64 = 8;

    /// Times a read of the prefix starts over, its revision compacted, before the failure
    /// is said as any other: a compactor faster than every read must not hold a start.
    const COMPACTED_RESTARTS: u32 = 8;

    /// gRPC's OUT_OF_RANGE, what etcd answers a read at a revision it has compacted
    /// (`etcdserver: mvcc: required revision has been compacted`).
    const GRPC_OUT_OF_RANGE: i32 = 11;

    fn compacted(e: &etcd_client::Error) -> bool {
        matches!(e, etcd_client::Error::GRpcStatus(status) if i32::from(status.code()) == GRPC_OUT_OF_RANGE)
    }

    /// [`get_pages`], started over at the newest revision when etcd compacted the one being
    /// read: the pages after the first are read at the first's revision, which an
    /// `etcdctl compact` to the newest revision (etcd's maintenance guide does so) passes
    /// once the store was written elsewhere meanwhile. That failed the read, which said
    /// etcd was unreachable while running and failed a start.
    async fn get(client: &mut Client, prefix: &str) -> Result<Fetched, etcd_client::Error> {
        let mut restarts = 0;
        loop {
            match get_pages(client, prefix).await {
                Err(e) if compacted(&e) && restarts < COMPACTED_RESTARTS => restarts += 1,
                read => return read,
            }
        }
    }

    /// Reads every key of `prefix` at one revision, a page at a time, and stops once they
    /// hold more than a configuration may ([`Fetched::beyond`]). Read in one response, a
    /// prefix over the message bound failed to decode, which read as etcd being down.
    async fn get_pages(client: &mut Client, prefix: &str) -> Result<Fetched, etcd_client::Error> {
        let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE_BYTES);
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut fetched = Fetched::default();
        let mut read = 0u64;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE_KEYS);
            if fetched.revision != 0 {
                options = options.with_revision(fetched.revision);
            }
            let response = kv.get(from.clone(), Some(options)).await?;
            if fetched.revision == 0 {
                fetched.revision = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                read += (kv.key().len() + kv.value().len()) as u64;
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                match crate::limits::utf8_text(kv.value().to_vec()) {
                    Ok(value) => {
                        fetched.keys.insert(key, value);
                    }
                    Err(at) => {
                        fetched.not_utf8.insert(key, at);
                    }
                }
            }
            if read > crate::limits::MAX_CONFIG_BYTES {
                fetched.beyond = Some(read);
                return Ok(fetched);
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    // The next page starts just after the last key read.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(fetched),
            }
        }
    }

    /// The end of the range of keys that start with `prefix`: its last byte below 0xff
    /// raised by one, what follows dropped (etcd's own prefix end); "\0" (every key) for a
    /// prefix of 0xff bytes alone.
    fn prefix_end(prefix: &[u8]) -> Vec<u8> {
        match prefix.iter().rposition(|&b| b < 0xff) {
            Some(i) => {
                let mut end = prefix[..=i].to_vec();
                end[i] += 1;
                end
            }
            None => vec![0],
        }
    }

    /// A client of one member: the first, from the `start`th on (round), that connects.
    /// One at a time, not tonic's balanced channel over all: that sent a request to a dead
    /// member as readily as to a live one, and the request failed.
    async fn connect(source: &EtcdSource, start: usize) -> Result<Client, etcd_client::Error> {
        let members: Vec<&str> = source.endpoints().collect();
        let mut last = etcd_client::Error::InvalidArgs("no etcd endpoint".into());
        for k in 0..members.len() {
            match Client::connect([members[(start + k) % members.len()]], Some(options())).await {
                Ok(client) => return Ok(client),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Reads the prefix once (at start: without a configuration there is nothing to run),
    /// from the first member that answers.
    pub fn fetch(source: &EtcdSource) -> anyhow::Result<Fetched> {
        runtime()?.block_on(async {
            let mut last = None;
            for start in 0..source.endpoints().count().max(1) {
                let read = async { get(&mut connect(source, start).await?, &source.prefix).await };
                match read.await {
                    Ok(fetched) => return Ok(fetched),
                    Err(e) => last = Some(e),
                }
            }
            Err(anyhow::anyhow!("{source}: {}", last.map_or_else(|| "no endpoint".to_string(), |e| said(&e))))
        })
    }

    /// Watches the prefix from what `start` read until `stop`, leaving every change in
    /// `slot`; setting `refetch` (SIGHUP) makes it read the whole prefix again. `up` says
    /// whether etcd answers (`transitd_config_source_up`).
    pub fn watch(
        source: EtcdSource,
        start: Fetched,
        slot: Slot,
        stop: Arc<AtomicBool>,
        refetch: Arc<AtomicBool>,
        up: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let rt = runtime()?;
        std::thread::Builder::new().name("transitd-etcd".into()).spawn(move || {
            rt.block_on(watch_loop(source, start, slot, stop, refetch, up));
        })
    }

    async fn watch_loop(
        source: EtcdSource,
        mut last: Fetched,
        slot: Slot,
        stop: Arc<AtomicBool>,
        refetch: Arc<AtomicBool>,
        up: Arc<AtomicBool>,
    ) {
        let mut down_since: Option<std::time::Instant> = None;
        let mut backoff = Duration::from_millis(250);
        // The member to try first: the next one after each failure.
        let mut member = 0;
        while !stop.load(Ordering::Relaxed) {
            match watch_once(&source, member, &mut last, &slot, &stop, &refetch, &mut down_since, &up).await {
                Ok(()) => return,
                Err(e) => {
                    member += 1;
                    up.store(false, Ordering::Relaxed);
                    if down_since.is_none() {
                        log_line!(
                            "transitd: {source}: {}; the last good configuration keeps running, retrying",
                            said(&e)
                        );
                        down_since = Some(std::time::Instant::now());
                        // A new outage starts from the short wait, not the last one's longest.
                        backoff = Duration::from_millis(250);
                    }
                    // In steps, so that a stop (SIGTERM while etcd is away) is not held for
                    // the rest of a 5 s wait.
                    let until = tokio::time::Instant::now() + backoff;
                    while tokio::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One connection's life: catch up on what changed while away, then follow the watch.
    /// `last` is what was last handed on. Returns `Ok` when stopped, `Err` when the
    /// connection fails.
    #[allow(clippy::too_many_arguments)]
    async fn watch_once(
        source: &EtcdSource,
        member: usize,
        last: &mut Fetched,
        slot: &Slot,
        stop: &AtomicBool,
        refetch: &AtomicBool,
        down_since: &mut Option<std::time::Instant>,
        up: &AtomicBool,
    ) -> Result<(), etcd_client::Error> {
        let mut client = connect(source, member).await?;
        // Handed on only when the keys changed: a reconnect, or a write elsewhere in the
        // store, reads the same keys at a new revision, and a reload of the same
        // configuration restarts the rule counters and rewrites the XDP program's maps.
        let publish = |fetched: Fetched, last: &mut Fetched| {
            let changed = !fetched.same_content(last);
            last.revision = fetched.revision;
            if changed {
                *last = fetched.clone();
                if let Ok(mut s) = slot.lock() {
                    *s = Some(fetched);
                }
            }
        };
        // Whatever happened while away (or nothing): read the prefix whole.
        let fetched = get(&mut client, &source.prefix).await?;
        up.store(true, Ordering::Relaxed);
        if let Some(since) = down_since.take() {
            log_line!("transitd: {source}: reachable again after {:.1} s", since.elapsed().as_secs_f64());
        }
        publish(fetched, last);
        // The revision is etcd's to say: one at i64::MAX (a broken or hostile server) must not
        // overflow here.
        let options = WatchOptions::new().with_prefix().with_start_revision(last.revision.saturating_add(1));
        let mut watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE_BYTES);
        let (_watcher, mut stream) = watch.watch(source.prefix.as_str(), Some(options)).await?;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if refetch.swap(false, Ordering::Relaxed) {
                // SIGHUP: the operator asked for a reload, alike or not (asked again after
                // a failed read, whose reconnect hands on only what changed).
                let fetched =
                    get(&mut client, &source.prefix).await.inspect_err(|_| refetch.store(true, Ordering::Relaxed))?;
                *last = fetched.clone();
                if let Ok(mut s) = slot.lock() {
                    *s = Some(fetched);
                }
            }
            match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
                Err(_) => continue, // no change yet
                Ok(Ok(Some(response))) => {
                    if response.canceled() {
                        return Err(etcd_client::Error::WatchError(format!(
                            "watch canceled: {}",
                            response.cancel_reason()
                        )));
                    }
                    if response.events().is_empty() {
                        continue;
                    }
                    // A change: read the prefix whole, at one revision, so that several keys
                    // changed together are applied together. A burst of changes brings a
                    // response for each, whose reads may all see the same, newest revision:
                    // applied once (each application restarts the rule counters and rewrites
                    // the XDP program's maps).
                    if response.header().is_some_and(|h| h.revision() <= last.revision) {
                        continue;
                    }
                    let fetched = get(&mut client, &source.prefix).await?;
                    publish(fetched, last);
                }
                Ok(Ok(None)) => return Err(etcd_client::Error::WatchError("the watch stream ended".into())),
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

#[cfg(not(feature = "etcd"))]
mod client {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::{EtcdSource, Fetched, Slot};

    const DISABLED: &str = "this transitd was built without the `etcd` feature (cargo build --features etcd)";

    /// Fails: there is no etcd client in this build.
    pub fn fetch(_: &EtcdSource) -> anyhow::Result<Fetched> {
        anyhow::bail!(DISABLED)
    }

    /// Fails: there is no etcd client in this build.
    pub fn watch(
        _: EtcdSource,
        _: Fetched,
        _: Slot,
        _: Arc<AtomicBool>,
        _: Arc<AtomicBool>,
        _: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        Err(std::io::Error::other(DISABLED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const SERVER: &str = "[server]\nanycast = \"192.0.2.1\"\n";
    const ACME: &str = "[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n";

    #[test]
    fn keys_assemble_into_one_configuration() {
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", ACME)]);
        let loaded = assemble("/t/", &k).unwrap();
        let snap = crate::snapshot::Snapshot::build(&loaded).unwrap();
        assert_eq!(snap.customers.len(), 1);
        assert_eq!(snap.customers[0].name, "acme");
    }

    /// The header may be written as TOML allows it, with spaces or quotes.
    #[test]
    fn a_customer_header_with_spaces_or_quotes_is_one() {
        for header in ["[[ customer ]]", "[[\"customer\"]]", "  [[customer]]"] {
            let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", &ACME.replace("[[customer]]", header))]);
            let snap = crate::snapshot::Snapshot::build(&assemble("/t/", &k).unwrap());
            assert_eq!(snap.map(|s| s.customers.len()).ok(), Some(1), "{header}");
        }
    }

    #[test]
    fn errors_name_the_key_and_its_own_line() {
        let bad = "[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/33\"]\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", bad)]);
        let errors = crate::snapshot::Snapshot::build(&assemble("/t/", &k).unwrap()).unwrap_err().to_string();
        assert!(errors.starts_with("etcd:/t/customers/acme:3:"), "{errors}");
    }

    /// Every key's fault is said at once: toml stops at a text's first fault, and read joined,
    /// one customer key's typo hid another's value of the wrong type and the server key's
    /// typo, each found only once the one before it was fixed, a rejected write at a time.
    #[test]
    fn every_keys_fault_is_said_at_once() {
        let typo = "[[customer]]\nname = \"acme\"\nprefixs = []\n";
        let wrong_type = "[[customer]]\nname = \"beta\"\nprefixes = []\n[[customer.tunnel]]\nname = \"b\"\n\
                          remote = \"198.51.100.9\"\nkey = \"seven\"\n";
        let server = format!("{SERVER}anycats = 1\n");
        let k = keys(&[("/t/server", &server), ("/t/customers/acme", typo), ("/t/customers/beta", wrong_type)]);
        let errors: Vec<String> = assemble("/t/", &k).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("etcd:/t/customers/acme:3:1: unknown field `prefixs`: did you mean `prefixes`?"));
        assert_eq!(errors[1], "etcd:/t/customers/beta:7:7: invalid type: string \"seven\", expected u32");
        assert!(errors[2].starts_with("etcd:/t/server:3:1: unknown field `anycats`: did you mean `anycast`?"));
        // A key that is no TOML at all hides no other key's fault either.
        let broken = "[[customer]]\nname = \"beta\"\nprefixes = [\"198.18.100.0/24\"\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", typo), ("/t/customers/beta", broken)]);
        let errors: Vec<String> = assemble("/t/", &k).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("etcd:/t/customers/acme:3:1: unknown field `prefixs`"), "{errors:?}");
        assert_eq!(errors[1], "etcd:/t/customers/beta:3:30: unclosed array, expected `]`");
        // Good keys beside them are said nothing of, and fixed, the keys assemble.
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", &typo.replace("prefixs", "prefixes"))]);
        assert!(assemble("/t/", &k).is_ok());
    }

    /// A key's syntax error is said in the words a file's is: the duplicate key named, an
    /// address written bare told to be quoted (toml says only "duplicate key", "invalid float").
    #[test]
    fn a_keys_syntax_error_is_said_as_a_files_is() {
        let twice = "[[customer]]\nname = \"acme\"\nname = \"acme\"\nprefixes = []\n";
        let bare = "[server]\nanycast = 192.0.2.1\n";
        let k = keys(&[("/t/server", bare), ("/t/customers/acme", twice)]);
        let errors: Vec<String> = assemble("/t/", &k).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[0],
            "etcd:/t/customers/acme:3:1: duplicate key `name`: a key is set once in its table, and a [table] \
             written once"
        );
        assert!(errors[1].starts_with("etcd:/t/server:2:"), "{errors:?}");
        assert!(errors[1].ends_with(": an address is a string in TOML: write \"192.0.2.1\""), "{errors:?}");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_at_its_key() {
        let fetched = Fetched {
            keys: keys(&[("/t/server", SERVER)]),
            not_utf8: [("/t/customers/acme".to_string(), (3, 27))].into(),
            revision: 1,
            beyond: None,
        };
        let errors = assemble_fetched("/t/", &fetched).unwrap_err().to_string();
        assert_eq!(errors.trim_end(), "etcd:/t/customers/acme:3:27: not UTF-8 text: an invalid byte");
        // Another key's fault is said with it, and a server key that is no text is not also
        // said to be missing.
        let typo = "[[customer]]\nname = \"beta\"\nprefixs = []\n";
        let mut more = fetched.clone();
        more.keys.insert("/t/customers/beta".into(), typo.into());
        more.not_utf8.insert("/t/server".into(), (1, 2));
        more.keys.remove("/t/server");
        let errors: Vec<String> =
            assemble_fetched("/t/", &more).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0], "etcd:/t/customers/acme:3:27: not UTF-8 text: an invalid byte");
        assert!(errors[1].starts_with("etcd:/t/customers/beta:3:1: unknown field `prefixs`"), "{errors:?}");
        assert_eq!(errors[2], "etcd:/t/server:1:2: not UTF-8 text: an invalid byte");
        let whole = Fetched { not_utf8: BTreeMap::new(), ..fetched };
        assert!(assemble_fetched("/t/", &whole).is_ok());
    }

    #[test]
    fn relative_file_paths_are_refused_from_etcd() {
        let list = "[[list]]\nname = \"bad\"\nfile = \"bad.txt\"\n";
        let k = keys(&[("/t/server", &format!("{SERVER}{list}"))]);
        let loaded = assemble("/t/", &k).unwrap();
        let errors = crate::snapshot::Snapshot::build(&loaded).err().unwrap().to_string();
        assert!(
            errors.contains("list file `bad.txt` is a relative path, and a configuration from etcd has no directory"),
            "{errors}"
        );
        assert!(errors.starts_with("etcd:/t/server:"), "{errors}");
    }

    #[test]
    fn keys_that_do_not_fit_are_rejected() {
        let other = "[[customer]]\nname = \"other\"\nprefixes = []\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", other), ("/t/stray", "x = 1")]);
        let errors = assemble("/t/", &k).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/customers/acme: the key names customer `acme`"), "{errors}");
        assert!(errors.contains("etcd:/t/stray: not a transitd key"), "{errors}");
        let errors = assemble("/t/", &keys(&[("/t/customers/acme", ACME)])).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/server: missing"), "{errors}");
        let k = keys(&[("/t/server", &format!("{SERVER}{ACME}"))]);
        assert!(assemble("/t/", &k).unwrap_err().to_string().contains("their own keys"));
    }

    /// Each key is TOML on its own: joined, a string the first opens and the second closes
    /// would make the second's tables part of a string, and what it "closes" with be read as
    /// tables of the first. The inline form of a customer is refused by name, rather than
    /// read as a key of the server key's last table.
    #[test]
    fn each_key_must_stand_on_its_own() {
        let opens = "[[customer]]\nname = \"acme\"\nnote = \"\"\"\n";
        let closes = "\"\"\"\n[server]\nanycast = \"192.0.2.9\"\n[[customer]]\nname = \"zeta\"\nprefixes = []\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", opens), ("/t/customers/zeta", closes)]);
        let errors = assemble("/t/", &k).unwrap_err().to_string();
        // Each at a position in its own key (where toml found the text to end wrongly).
        assert!(errors.contains("etcd:/t/customers/acme:4:1: invalid multi-line basic string"), "{errors}");
        assert!(errors.contains("etcd:/t/customers/zeta:"), "{errors}");
        let inline = "customer = [{ name = \"acme\", prefixes = [\"203.0.113.0/24\"] }]\n";
        let k = keys(&[("/t/server", "[bgp]\n"), ("/t/customers/acme", inline)]);
        let errors = assemble("/t/", &k).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/customers/acme: a customer key holds one [[customer]] table"), "{errors}");
        let broken = keys(&[("/t/server", "[server\n"), ("/t/customers/acme", ACME)]);
        let errors = assemble("/t/", &broken).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/server:1:"), "{errors}");
        assert!(!errors.contains("missing"), "{errors}");
    }
}
