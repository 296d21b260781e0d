//! The recent batch durations, `transitd_batch_duration_recent_seconds`, as a summary written
//! by hand: prometheus-client 0.24 has no summary type, and a gauge labelled `quantile` is not
//! one (Prometheus's linter refuses it). The quantiles are over each worker's last complete
//! window ([`LATENCY_WINDOW`](crate::worker::LATENCY_WINDOW)), or the one in progress while no
//! complete one has had a batch (at the start, after a quiet spell); `_count` and `_sum` are the
//! whole run's, the numbers of the histogram `transitd_batch_duration_seconds`: OpenMetrics 1.0
//! ("Summary") makes a summary's count and sum counters, and the window's restart every 10 s.

use std::fmt::Write as _;

use super::export::sum_seconds;
use crate::worker::WorkerReport;

/// The family's name.
const NAME: &str = "transitd_batch_duration_recent_seconds";

/// The quantiles served, each with its label value as OpenMetrics's canonical numbers write
/// it (Go's `%g`, with `.0` where it has no point: `1.0`, not `1`), in increasing order as
/// the text format 0.0.4 asks.
const QUANTILES: [(f64, &str); 5] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999"), (1.0, "1.0")];

/// Appends the family to `out`, an OpenMetrics scrape that its `# EOF` has not closed yet.
/// A summary is written alike in the text format 0.0.4, which is made from these lines.
/// Each worker's samples are together, as OpenMetrics asks of a metric's.
pub(super) fn write_recent_batch_duration(out: &mut String, reports: &[WorkerReport]) {
    let _ = writeln!(
        out,
        "# HELP {NAME} Quantiles of the time a worker spends on one batch over the last complete 10 s window \
         (the one in progress while none complete had a batch); count and sum since the start"
    );
    let _ = writeln!(out, "# TYPE {NAME} summary");
    for report in reports {
        let worker = report.queue;
        let window = &report.latency_window;
        for (quantile, label) in QUANTILES {
            // OpenMetrics: a quantile of a window without events is NaN (hdrhistogram says 0).
            let seconds = if window.is_empty() { f64::NAN } else { window.value_at_quantile(quantile) as f64 / 1e9 };
            let _ = writeln!(out, "{NAME}{{worker=\"q{worker}\",quantile=\"{label}\"}} {seconds}");
        }
        let _ = writeln!(out, "{NAME}_sum{{worker=\"q{worker}\"}} {}", sum_seconds(&report.latency));
        let _ = writeln!(out, "{NAME}_count{{worker=\"q{worker}\"}} {}", report.latency.len());
    }
}
