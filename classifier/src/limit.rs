//! Rate limits for the `rate-limit` action: token buckets keyed by a packet's source,
//! destination, flow or rule, in memory fixed when the limiter is made.
//!
//! Each bucket is the Generic Cell Rate Algorithm (GCRA, the virtual-scheduling form of a
//! token bucket): one "theoretical arrival time" per key, which moves one emission interval
//! (1/rate) later for every packet let through; a packet is let through when that time is no
//! more than `burst - 1` intervals ahead of now. One `u64` per key, integer arithmetic, and
//! over a window of length T at most `burst + rate·T` packets pass: exactly a token bucket.
//!
//! Keys live in a per-bucket table of fixed size (4-way set associative). A key not in the
//! table takes the slot of its set with the earliest arrival time (free, or the key furthest
//! below its limit), so a flood from millions of random sources cannot grow the memory;
//! what it costs is accuracy for keys pushed out (they come back with a full burst). That
//! is why floods are limited by destination or by rule, whose keys are few; per-source
//! limits are for well-behaved sources. Time is an argument (the batch's receive time), so
//! the limiter reads no clock and holds no lock: each worker owns one.

/// How a bucket tells packets apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketKey {
    /// Destination address (`/32`, or `/128`).
    Destination,
    /// Source network: `/24` for IPv4, `/48` for IPv6.
    SourceNetwork,
    /// The 5-tuple (addresses, protocol, ports).
    Flow,
    /// Nothing: one bucket for everything the rule selects.
    Rule,
}

/// A bucket's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketSpec {
    /// What separates its keys.
    pub key: BucketKey,
    /// Packets per second let through, in the long run; 0 lets nothing through.
    pub rate: u64,
    /// Packets let through back to back.
    pub burst: u64,
}

/// The interval of a bucket whose rate is 0: no packet conforms.
const CLOSED: u64 = u64::MAX;

/// One bucket's table.
#[derive(Clone, Debug)]
struct Table {
    /// `(key tag, theoretical arrival time in ns)`; tag 0 is a free slot.
    slots: Vec<(u64, u64)>,
    /// Nanoseconds per packet; [`CLOSED`] for a rate of 0.
    interval: u64,
    /// How far ahead of now the arrival time may run: `(burst - 1) · interval`.
    tolerance: u64,
}

const WAYS: usize = 4;

/// A worker's rate limiter: one fixed-size table per bucket.
#[derive(Clone, Debug, Default)]
pub struct RateLimiter {
    tables: Vec<Table>,
}

impl RateLimiter {
    /// Tables for `buckets`, each with at least `slots` keys (rounded up to a power of two).
    pub fn new(buckets: &[BucketSpec], slots: usize) -> RateLimiter {
        let size = slots.max(WAYS).next_power_of_two();
        let tables = buckets
            .iter()
            .map(|b| {
                // Whole nanoseconds, rounded up: never more than `rate` in the long run (a
                // floor let 30,000,000 a second become 30.3 M and 600,000,000 become 1 G).
                let interval = 1_000_000_000u64
                    .checked_div(b.rate)
                    .map_or(CLOSED, |i| if i.saturating_mul(b.rate) == 1_000_000_000 { i } else { i + 1 });
                // Zeroed by the allocator: a table of 2^24 keys is not written (256 MiB)
                // on the worker that follows a reload, only faulted in as keys arrive.
                Table {
                    slots: bytemuck::zeroed_vec(size),
                    interval,
                    tolerance: interval.saturating_mul(b.burst.max(1) - 1),
                }
            })
            .collect();
        RateLimiter { tables }
    }

    /// Takes over `old`'s table `from[i]` as table `i` wherever `from` names one: state
    /// kept across a reload. The caller vouches that the two buckets are the same (spec
    /// and size); a table of another size is left as it is. The tables are swapped: `old`
    /// is left holding what was not taken (the caller frees it where that stalls nothing).
    pub fn adopt(&mut self, old: &mut RateLimiter, from: &[Option<usize>]) {
        for (table, j) in self.tables.iter_mut().zip(from) {
            if let Some(kept) = j.and_then(|j| old.tables.get_mut(j))
                && kept.slots.len() == table.slots.len()
            {
                std::mem::swap(table, kept);
            }
        }
    }

    /// Bytes of key state held (fixed from the start).
    pub fn memory_bytes(&self) -> usize {
        self.tables.iter().map(|t| t.slots.len() * size_of::<(u64, u64)>()).sum()
    }

    /// True when the packet of `key` (a 64-bit hash of what the bucket keys on) arriving at
    /// `now_ns` conforms to bucket `bucket`, and counts it if so.
    #[inline]
    pub fn admit(&mut self, bucket: usize, key: u64, now_ns: u64) -> bool {
        let Some(t) = self.tables.get_mut(bucket) else { return true };
        if t.interval == CLOSED {
            return false;
        }
        // Keyed: which set a key lands in is not the attacker's to choose (keys that share
        // a set evict each other, and an evicted key comes back with a full burst).
        let hashed = mix(key ^ secret());
        let tag = hashed | 1; // never 0, the free-slot tag
        let mask = t.slots.len() - 1;
        let set = (hashed as usize) & mask & !(WAYS - 1);
        let ways = &mut t.slots[set..set + WAYS];
        let slot = match ways.iter().position(|s| s.0 == tag) {
            Some(i) => i,
            None => {
                // The earliest arrival time makes room: a free slot's (0), else the key's
                // that loses least by forgetting (at or before now, it has its whole burst).
                let i = (0..WAYS).min_by_key(|&i| ways[i].1).unwrap_or(0);
                ways[i] = (tag, now_ns);
                i
            }
        };
        let tat = ways[slot].1.max(now_ns);
        if tat - now_ns > t.tolerance {
            return false;
        }
        ways[slot].1 = tat.saturating_add(t.interval);
        true
    }
}

/// A key drawn once per process (from the standard library's randomness, seeded by the
/// operating system), mixed into every bucket key before it picks a set.
fn secret() -> u64 {
    static SECRET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SECRET.get_or_init(|| std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0x006c_696d_6974_u64))
}

/// A 128-bit address as a 64-bit bucket key, keyed like the sets: two addresses share a
/// bucket only by chance (an unkeyed `hi ^ lo` made every IPv6 `(hi ^ x, lo ^ x)` one).
pub fn fold_address(address: u128) -> u64 {
    (address as u64) ^ mix((address >> 64) as u64 ^ secret())
}

/// A 64-bit finaliser (splitmix64), so that keys differing in few bits land in different sets.
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_steady_flood_passes_burst_plus_rate_times_time() {
        // 1000 packets/s for 2 s into a 100/s bucket with burst 10: 10 + 100 x 2 pass (the
        // first packet at t = 0 counts in the burst).
        let mut l = RateLimiter::new(&[BucketSpec { key: BucketKey::Rule, rate: 100, burst: 10 }], 16);
        let passed = (0..2000u64).filter(|i| l.admit(0, 7, i * MS)).count();
        assert_eq!(passed, 10 + 200 - 1);
    }

    /// An interval that 10^9 / rate does not give whole is rounded up: high rates pass a
    /// little less than asked, never more (rounded down, 30 M/s passed 30.3 M and 600 M/s
    /// passed 1 G).
    #[test]
    fn a_rate_that_does_not_divide_a_second_passes_no_more_than_it_says() {
        for rate in [3u64, 7, 1_500_000, 30_000_000, 300_000_000, 600_000_000, 2_000_000_000] {
            let mut l = RateLimiter::new(&[BucketSpec { key: BucketKey::Rule, rate, burst: 1 }], 16);
            // A packet every nanosecond for 10 ms (every 10 µs for the slow rates' 10 s).
            let (step, count) = if rate < 1000 { (10_000, 1_000_000u64) } else { (1, 10_000_000u64) };
            let passed = (0..count).filter(|i| l.admit(0, 7, i * step)).count() as u64;
            let allowed = 1 + rate * count * step / 1_000_000_000;
            assert!(passed <= allowed, "rate {rate}: {passed} passed, {allowed} allowed");
            assert!(passed * 100 >= allowed * 49, "rate {rate}: {passed} passed, far below {allowed}");
        }
    }

    #[test]
    fn keys_are_limited_separately_and_memory_stays_fixed() {
        let spec = BucketSpec { key: BucketKey::Destination, rate: 1, burst: 1 };
        let mut l = RateLimiter::new(&[spec], 1024);
        let before = l.memory_bytes();
        assert!(l.admit(0, 1, 0) && l.admit(0, 2, 0));
        assert!(!l.admit(0, 1, MS), "key 1 spent its burst");
        assert!(l.admit(0, 1, 1000 * MS), "a second later it has a token again");
        for k in 0..1_000_000u64 {
            l.admit(0, mix(k) | 8, k);
        }
        assert_eq!(l.memory_bytes(), before);
    }

    /// A key not in the table takes the slot of the key furthest below its limit (the earliest
    /// arrival time), not the least recently seen one's (docs/dos.md): a key that spent its
    /// burst keeps its debt while keys seen since are pushed out, each back with a full burst.
    #[test]
    fn a_new_key_pushes_out_the_key_furthest_below_its_limit() {
        let s = 1000 * MS;
        // Four slots: one set.
        let mut l = RateLimiter::new(&[BucketSpec { key: BucketKey::Destination, rate: 1, burst: 10 }], 4);
        assert!((0..10).all(|_| l.admit(0, 1, 0)), "key 1 spends its burst at 0 s");
        assert!([2, 3, 4].iter().all(|&k| l.admit(0, k, s)), "keys 2 to 4, one packet each at 1 s");
        assert!(l.admit(0, 5, 3 * s / 2), "key 5 takes key 2's slot");
        // Key 1, the least recently seen, kept its slot: one token earned back, no new burst.
        assert_eq!((0..10).filter(|_| l.admit(0, 1, 16 * s / 10)).count(), 1);
        assert_eq!((0..11).filter(|_| l.admit(0, 2, 16 * s / 10)).count(), 10, "key 2 comes back with a full burst");
    }

    #[test]
    fn rate_zero_lets_nothing_through() {
        let mut l = RateLimiter::new(&[BucketSpec { key: BucketKey::Rule, rate: 0, burst: 100 }], 16);
        assert!((0..1000u64).all(|i| !l.admit(0, 0, i * 100 * MS)));
    }

    #[test]
    fn keys_one_bit_apart_are_buckets_apart() {
        // Keys 0 and 1 once shared a tag (key | 1): a `key = "rule"` bucket counted rules 0
        // and 1 as one when they met in a set.
        let spec = BucketSpec { key: BucketKey::Rule, rate: 1, burst: 1 };
        let mut l = RateLimiter::new(&[spec], 4);
        assert!(l.admit(0, 0, 0) && l.admit(0, 1, 0), "each key has its own token");
        assert!(!l.admit(0, 0, 1) && !l.admit(0, 1, 1));
    }

    #[test]
    fn a_slow_sender_is_never_limited() {
        let mut l = RateLimiter::new(&[BucketSpec { key: BucketKey::Flow, rate: 10, burst: 1 }], 16);
        assert!((0..100u64).all(|i| l.admit(0, 3, i * 100 * MS)));
    }
}
