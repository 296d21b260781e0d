//! The etcd v3 client: gets the prefix's keys and watches them, on a thread with its own
//! small async runtime (etcd-client is async), handing each change to the main loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, WatchOptions};

use super::{EtcdSource, Fetched, Slot};

/// An etcd client error in one line: a gRPC status prints its code, message and its
/// source's debug dump; the message and the innermost cause (the OS error of a failed
/// connect) say what an operator needs.
fn said(e: &etcd_client::Error) -> String {
    fn innermost<'a>(mut cause: Option<&'a (dyn std::error::Error + 'static)>) -> Option<&'a dyn std::error::Error> {
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

/// The shortest time between two take-overs of the watch by another member without an
/// outage being said ([`watch_loop`]).
const MIN_TAKE_OVER_GAP: Duration = Duration::from_secs(5);

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

/// A client of one member: the first, from the `start`th on (round), that answers.
/// One at a time, not tonic's balanced channel over all: that sent a request to a dead
/// member as readily as to a live one, and the request failed.
async fn connect(source: &EtcdSource, start: usize) -> Result<Client, etcd_client::Error> {
    let members: Vec<&str> = source.endpoints().collect();
    let mut last = etcd_client::Error::InvalidArgs("no etcd endpoint".into());
    for k in 0..members.len() {
        match answering(members[(start + k) % members.len()]).await {
            Ok(client) => return Ok(client),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A client of `member` once it answers its status. `Client::connect` connects lazily, at
/// the first request, so it never failed for a member that was down: the next member was
/// never tried here, and the read that failed instead said etcd was unreachable (at every
/// start with the first member listed down). The status is asked with a leader required,
/// as every request is ([`options`]): a member cut off from the cluster is passed over too.
async fn answering(member: &str) -> Result<Client, etcd_client::Error> {
    let mut client = Client::connect([member], Some(options())).await?;
    client.status().await?;
    Ok(client)
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
    // When a member that answers last took over from the one followed.
    let mut taken_over: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match watch_once(&source, member, &mut last, &slot, &stop, &refetch, &mut down_since, &up).await {
            Ok(()) => return,
            Err(e) => {
                member += 1;
                // The member followed went away (stopped, restarted) or ended its watch
                // (compacted): another that answers takes over at once, which is no outage
                // of etcd. Said as one, it was on every rolling restart of etcd's members,
                // with `transitd_config_source_up` at 0. An outage is said when none answers,
                // or when the watch fails again within MIN_TAKE_OVER_GAP: a watch failing over
                // and over backs off below rather than reconnecting in a tight loop.
                let followed = down_since.is_none() && up.load(Ordering::Relaxed);
                if followed && taken_over.is_none_or(|at| at.elapsed() >= MIN_TAKE_OVER_GAP) {
                    log_line!("transitd: {source}: {}; reading the prefix again from a member that answers", said(&e));
                    taken_over = Some(std::time::Instant::now());
                    continue;
                }
                up.store(false, Ordering::Relaxed);
                if down_since.is_none() {
                    log_line!("transitd: {source}: {}; the last good configuration keeps running, retrying", said(&e));
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
                    // A compaction past the watch's start (between the read and the watch)
                    // cancels it with no reason given: said as `watch canceled: ` alone.
                    let why = match response.compact_revision() {
                        0 => response.cancel_reason().to_string(),
                        compacted => format!("its start was compacted (etcd keeps revisions from {compacted})"),
                    };
                    return Err(etcd_client::Error::WatchError(format!("watch canceled: {why}")));
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
