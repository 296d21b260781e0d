//! Repeated timed runs and their summary: min, median and max of ns per item.

use std::time::Instant;

use transitd::pipeline::{TxReason, WorkerStats};

/// The median of `sorted` (ascending, not empty): the middle value, or the mean of the two
/// middle values of an even count. Every benchmark of the crate, and the scripts, take it so.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Frames the pipeline forwarded: encapsulated toward a customer, decapsulated toward the
/// Internet, their fragments, or sent over the backbone. Not the frames it originated (ICMP
/// errors, echo replies, SYN challenges, probes, keepalives): a run that forwarded nothing
/// but sent one of those measured nothing worth a figure.
pub fn forwarded(stats: &WorkerStats) -> u64 {
    [TxReason::Encapsulated, TxReason::Decapsulated, TxReason::Fragment, TxReason::Backbone]
        .iter()
        .map(|&r| stats.sent_as(r))
        .sum()
}

/// One timed run of `work`, in ns per item of its `items`.
fn ns_per_item(items: u64, work: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    work();
    t.elapsed().as_nanos() as f64 / items as f64
}

/// Timing of repeated runs of the same work.
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    /// Fastest run, ns per item.
    pub min: f64,
    /// Median run, ns per item.
    pub median: f64,
    /// Slowest run, ns per item.
    pub max: f64,
}

impl Runs {
    /// Runs `work` (which processes `items` items) `runs` times after one warm-up run.
    pub fn measure(runs: usize, items: u64, mut work: impl FnMut()) -> Runs {
        work();
        Runs::of((0..runs.max(1)).map(|_| ns_per_item(items, &mut work)).collect())
    }

    /// Runs each of `rows` pieces of work (`work(row)`, each processing `items` items)
    /// `runs` times after a warm-up run of each, interleaved: a run of every row, in order,
    /// then in reverse order, and so on, so that a drift of the machine's speed over the run
    /// falls on every row alike. One summary per row.
    pub fn interleaved(runs: usize, items: u64, rows: usize, mut work: impl FnMut(usize)) -> Vec<Runs> {
        for row in 0..rows {
            work(row);
        }
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); rows];
        for i in 0..runs.max(1) {
            for k in 0..rows {
                let row = if i % 2 == 0 { k } else { rows - 1 - k };
                ns[row].push(ns_per_item(items, &mut || work(row)));
            }
        }
        ns.into_iter().map(Runs::of).collect()
    }

    /// The summary of runs' ns per item (not empty).
    fn of(mut ns: Vec<f64>) -> Runs {
        ns.sort_by(f64::total_cmp);
        Runs { min: ns[0], median: median(&ns), max: ns[ns.len() - 1] }
    }

    /// One table row: name, ns/item min/median/max, and millions of items per second at the
    /// median.
    pub fn row(&self, name: &str) -> String {
        format!("| {name} | {:.1} | {:.1} | {:.1} | {:.2} |", self.min, self.median, self.max, 1e3 / self.median)
    }

    /// The table header matching [`Runs::row`].
    pub fn header(unit: &str) -> String {
        format!(
            "| what | ns/{unit} min | ns/{unit} median | ns/{unit} max | M{unit}/s (median) |\n|---|---:|---:|---:|---:|"
        )
    }
}
