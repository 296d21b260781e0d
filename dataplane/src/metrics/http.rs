//! Serving the scrape over HTTP, on a thread of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Sources, render};

/// The OpenMetrics content type Prometheus asks for.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr` until `stop` is set.
pub fn serve(
    addr: SocketAddr,
    sources: Arc<Sources>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let server = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?;
    let handle = std::thread::Builder::new().name("transitd-metrics".into()).spawn(move || {
        // Failed responses (a scraper that hung up, say) are counted and logged at most once
        // a minute, so that neither a broken client nor a broken listener floods the log.
        let mut failed = 0u64;
        let mut logged = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let request = match server.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!("transitd: metrics server: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let response = match (request.method(), request.url()) {
                (tiny_http::Method::Get, "/metrics") => {
                    let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE).ok();
                    let r = tiny_http::Response::from_string(render(&sources));
                    match header {
                        Some(h) => r.with_header(h),
                        None => r,
                    }
                }
                (tiny_http::Method::Get, "/") => {
                    tiny_http::Response::from_string("transitd: metrics at /metrics\n".to_string())
                }
                _ => tiny_http::Response::from_string("not found: try /metrics\n".to_string()).with_status_code(404),
            };
            if let Err(e) = request.respond(response) {
                failed += 1;
                if logged.elapsed() >= Duration::from_secs(60) {
                    eprintln!("transitd: metrics: {failed} responses failed so far (the last: {e})");
                    logged = std::time::Instant::now();
                }
            }
        }
    })?;
    Ok(handle)
}
