//! A build without the `etcd` feature: the fleet commands say so.

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
