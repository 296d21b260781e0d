//! Serving the scrape over HTTP, on a thread of its own. Connections are bounded in number,
//! bytes and time, so that no client can hold the thread, grow its memory or use up the
//! process's file descriptors (which the supervisor needs: an `if_nametoindex` failing for
//! want of one would read as the interface gone). At most [`MAX_OPEN`] are open at once, the
//! oldest closed to make room for a new one; each has [`HEAD_DEADLINE`] to send its request
//! head, read as it arrives on a sweep over the open ones. A scraper sends its request as it
//! connects, so it is answered however many idle or slow connections are open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Sources, render};

/// The OpenMetrics content type Prometheus asks for.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The most a request head may take: a scraper's is a few hundred bytes.
const MAX_HEAD_BYTES: usize = 8192;
/// The most a client has to send its request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// The most one write of the response may block (a client that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once (two file descriptors at most each, with the listener's).
const MAX_OPEN: usize = 32;
/// How long the loop sleeps when nothing happened (it looks at `stop` as often).
const IDLE_POLL: Duration = Duration::from_millis(5);

/// Serves `GET /metrics` on `addr` until `stop` is set.
pub fn serve(
    addr: SocketAddr,
    sources: Arc<Sources>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?;
    serve_on(listener, move || render(&sources), stop)
}

/// A connection waiting for its request head.
struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
    deadline: Instant,
}

/// Serves `body()` at `/metrics` on `listener` until `stop` is set.
fn serve_on(
    listener: TcpListener,
    body: impl Fn() -> String + Send + 'static,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let handle = std::thread::Builder::new().name("transitd-metrics".into()).spawn(move || {
        let mut open: std::collections::VecDeque<Pending> = std::collections::VecDeque::with_capacity(MAX_OPEN);
        // Failed exchanges (a scraper that hung up, a malformed request) are counted and
        // logged at most once a minute, so that no client floods the log.
        let mut failed = 0u64;
        let mut logged: Option<Instant> = None;
        let mut fail = |e: std::io::Error| {
            failed += 1;
            if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                eprintln!("transitd: metrics: {failed} exchanges failed so far (the last: {e})");
                logged = Some(Instant::now());
            }
        };
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            match listener.accept() {
                Ok((stream, _)) => {
                    busy = true;
                    if open.len() == MAX_OPEN {
                        open.pop_front(); // the oldest: closed as it drops
                    }
                    match stream.set_nonblocking(true) {
                        Ok(()) => open.push_back(Pending {
                            stream,
                            head: Vec::new(),
                            deadline: Instant::now() + HEAD_DEADLINE,
                        }),
                        Err(e) => fail(e),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EMFILE and the like: the sweep below frees what it can.
                Err(e) => fail(e),
            }
            let now = Instant::now();
            let mut i = 0;
            while i < open.len() {
                match advance(&mut open[i], now) {
                    Progress::Waiting => i += 1,
                    Progress::Complete(head) => {
                        busy = true;
                        let Some(p) = open.remove(i) else { break };
                        if let Err(e) = answer(p.stream, head, &body) {
                            fail(e);
                        }
                    }
                    Progress::Failed(e) => {
                        busy = true;
                        open.remove(i);
                        fail(e);
                    }
                }
            }
            if !busy {
                std::thread::sleep(IDLE_POLL);
            }
        }
    })?;
    Ok(handle)
}

/// What a request asked for.
enum Head {
    /// `GET` of a path.
    Get(String),
    /// Another method.
    OtherMethod,
    /// Not an HTTP request within the bounds.
    Bad(&'static str),
}

/// Where a connection's request head stands.
enum Progress {
    Waiting,
    Complete(Head),
    Failed(std::io::Error),
}

/// Reads what has arrived of `p`'s request head, at most [`MAX_HEAD_BYTES`].
fn advance(p: &mut Pending, now: Instant) -> Progress {
    let mut chunk = [0u8; 2048];
    let room = MAX_HEAD_BYTES - p.head.len();
    match p.stream.read(&mut chunk[..room.min(2048)]) {
        Ok(0) => {
            return Progress::Failed(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the request head",
            ));
        }
        Ok(n) => p.head.extend_from_slice(&chunk[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            if now >= p.deadline {
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "request head not sent in time");
                return Progress::Failed(e);
            }
            return Progress::Waiting;
        }
        Err(e) => return Progress::Failed(e),
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    Progress::Complete(match request.parse(&p.head) {
        Ok(httparse::Status::Complete(_)) => match (request.method, request.path) {
            (Some("GET"), Some(path)) => Head::Get(path.to_string()),
            _ => Head::OtherMethod,
        },
        Ok(httparse::Status::Partial) if p.head.len() < MAX_HEAD_BYTES => return Progress::Waiting,
        Ok(httparse::Status::Partial) => Head::Bad("request head too large"),
        Err(httparse::Error::TooManyHeaders) => Head::Bad("too many headers"),
        Err(_) => Head::Bad("not an HTTP request"),
    })
}

/// Answers `head` on `stream`; the connection closes after. Whatever body the client sent
/// is not read.
fn answer(mut stream: TcpStream, head: Head, body: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (status, content_type, text) = match head {
        Head::Get(path) if path == "/metrics" => ("200 OK", CONTENT_TYPE, body()),
        Head::Get(path) if path == "/" => ("200 OK", "text/plain", "transitd: metrics at /metrics\n".into()),
        Head::Get(_) => ("404 Not Found", "text/plain", "not found: try /metrics\n".into()),
        Head::OtherMethod => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
        Head::Bad(why) => ("400 Bad Request", "text/plain", format!("{why}\n")),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(text.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Both)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = serve_on(listener, || "# EOF\n".to_string(), stop.clone()).unwrap();
        (addr, stop, handle)
    }

    /// Sends `request` and returns the status line of the answer.
    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.lines().next().unwrap_or("").to_string()
    }

    #[test]
    fn a_scrape_is_answered_and_the_rest_refused_by_status() {
        let (addr, stop, handle) = server();
        assert_eq!(crate::metrics::fetch(addr).unwrap(), "# EOF\n");
        assert_eq!(ask(addr, b"GET /other HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
        assert_eq!(ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(ask(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2 * MAX_HEAD_BYTES));
        assert_eq!(ask(addr, huge.as_bytes()), "HTTP/1.1 400 Bad Request");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
    }

    /// The request that aborted tiny_http 0.12 (a body length it allocated up front), a
    /// client that never finishes its head, and hundreds of idle connections: the scrape
    /// after them is still answered.
    #[test]
    fn no_client_holds_the_listener() {
        let (addr, stop, handle) = server();
        let length = ask(addr, b"GET /metrics HTTP/1.1\r\nContent-Length: 4611686018427387904\r\n\r\n");
        assert_eq!(length, "HTTP/1.1 200 OK");
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Answered, not queued behind the others' deadlines (200 x 2 s; fetch gives up
        // after 5 s without a byte).
        assert_eq!(crate::metrics::fetch(addr).unwrap(), "# EOF\n");
        drop((slow, idle));
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
    }
}
