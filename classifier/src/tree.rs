//! The compiled lookup structure: a small forest of decision trees over boxes.
//!
//! Boxes (one inclusive `[lo, hi]` per key slot, see `compile`) are first split into up to
//! four groups by whether they are narrow in the two address slots most rules are narrow in
//! (CutSplit's idea: a rule that is wide in a slot would be copied into every subtree that
//! cuts that slot, so it goes where that slot is never cut first). Each group gets a binary
//! decision tree in the manner of HyperSplit: a node tests `key[slot] <= point`, chosen so
//! that the larger side holds as few boxes as possible; a leaf lists at most [`LEAF_SIZE`]
//! boxes (more where no cut separates them; a box covering the leaf's region ends the list),
//! in priority order, each with only the slot checks its leaf's region does not already imply.
//!
//! A leaf is a node whose test always succeeds and leads back to itself, so a walk can take
//! a fixed number of steps without a branch on "is this a leaf?": [`Forest::first_match_batch`]
//! walks eight keys through a tree in lockstep, their independent loads overlapping, which
//! is where a tree walk's time goes (a chain of dependent loads). [`Forest::first_match`]
//! walks one key and stops early where a subtree cannot beat the best match found so far.
//! Nodes are flat 20-byte records in one array: no pointers, no allocation per lookup.

use crate::compile::Bounds;
use crate::field::{DIMS, Dim, Key};

/// Boxes per leaf the builder aims for. One: a cut costs one dependent load, a leaf entry
/// six slot checks, and on the ClassBench sets splitting down to single boxes made lookups
/// 1.2–2x faster than leaves of 8 at no cost in build time or memory worth noting (the boxes
/// that are copied most are the wide ones, which stop the splitting early anyway; see
/// docs/benchmarks.md).
pub const LEAF_SIZE: usize = 1;
/// Keys walked together by [`Forest::first_match_batch`].
pub const LANES: usize = 8;
/// Depth at which a node becomes a leaf whatever its size.
const MAX_DEPTH: usize = 48;
/// Groups larger than this get a root table.
const TABLE_MIN: usize = 256;
/// Slots narrower than this are "narrow" for grouping (a /16 within a 32-bit word).
const NARROW: u64 = 1 << 16;

/// A tree node. A split goes `left` when `key[slot] <= point`, else `right`; a leaf has
/// `point == u32::MAX` and both children itself, and its boxes are `leaf_span[node]`.
/// `min_rule` is the best rule anywhere below.
#[derive(Clone, Copy, Debug)]
struct Node {
    slot: u32,
    point: u32,
    left: u32,
    right: u32,
    min_rule: u32,
}

/// Constraints checked inline per leaf entry; an entry with more keeps the rest in
/// [`Forest::constraints`].
const INLINE: usize = 6;

/// A box in a leaf: its rule and the constraints the leaf's region does not already imply.
/// The first [`INLINE`] are stored inline, padded with checks that always hold, so that a
/// leaf is scanned without a branch per constraint; `(first, count)` locates any others.
#[derive(Clone, Copy, Debug)]
struct LeafEntry {
    rule: u32,
    slot: [u8; INLINE],
    lo: [u32; INLINE],
    /// `hi - lo`, so that `key - lo <= span` (wrapping) tests `lo <= key <= hi` in one compare.
    span: [u32; INLINE],
    first: u32,
    count: u32,
}

impl LeafEntry {
    #[inline]
    fn holds_inline(&self, key: &Key) -> bool {
        let mut ok = true;
        for i in 0..INLINE {
            let v = key.0[self.slot[i] as usize];
            ok &= v.wrapping_sub(self.lo[i]) <= self.span[i];
        }
        ok
    }
}

/// A constrained slot of a box.
#[derive(Clone, Copy, Debug)]
struct Constraint {
    slot: u8,
    lo: u32,
    hi: u32,
}

/// A tree: its root node, or a table of root nodes indexed by the top bits of one slot; the
/// best (lowest) rule index in it; its depth below the root (or below the table).
#[derive(Clone, Copy, Debug)]
struct Root {
    node: u32,
    table: Option<Table>,
    best_rule: u32,
    depth: u32,
}

/// A root table: `cells[first + ((key[slot] >> shift) & mask)]` is the subtree for that key.
#[derive(Clone, Copy, Debug)]
struct Table {
    slot: u32,
    shift: u32,
    mask: u32,
    first: u32,
}

impl Root {
    #[inline]
    fn start(&self, cells: &[u32], key: &Key) -> u32 {
        match self.table {
            None => self.node,
            Some(t) => cells[(t.first + ((key.0[t.slot as usize] >> t.shift) & t.mask)) as usize],
        }
    }
}

/// The compiled forest.
#[derive(Clone, Debug, Default)]
pub struct Forest {
    roots: Vec<Root>,
    cells: Vec<u32>,
    nodes: Vec<Node>,
    /// `(first entry, count)` of each leaf, indexed by node (zero for splits).
    leaf_span: Vec<(u32, u32)>,
    entries: Vec<LeafEntry>,
    constraints: Vec<Constraint>,
    boxes: usize,
}

/// Sizes, for reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForestStats {
    /// Trees.
    pub trees: usize,
    /// Nodes, leaves included.
    pub nodes: usize,
    /// Leaves.
    pub leaves: usize,
    /// Most boxes in one leaf.
    pub largest_leaf: usize,
    /// Box references held by leaves (copies included).
    pub leaf_entries: usize,
    /// Boxes.
    pub boxes: usize,
    /// Bytes of the lookup arrays.
    pub bytes: usize,
    /// Deepest leaf.
    pub depth: usize,
}

impl Forest {
    /// Builds a forest over `boxes`, given as `(rule index, bounds)` in priority order
    /// (rule indices ascending).
    pub fn build(boxes: &[(u32, Bounds)]) -> Forest {
        let mut b =
            Builder { boxes, nodes: Vec::new(), leaf_span: Vec::new(), entries: Vec::new(), constraints: Vec::new() };
        let mut roots = Vec::new();
        let mut cells = Vec::new();
        let (groups, table_slots) = groups(boxes);
        for group in groups {
            if group.is_empty() {
                continue;
            }
            let best_rule = boxes[group[0] as usize].0;
            let root = match table_slots.first() {
                // A table on a window of bits of an address slot replaces the first levels
                // of the tree. Rule sets cluster (thousands of rules in a few /16s), so the
                // window is chosen, over both address slots the groups were formed on, to
                // spread the boxes most evenly; a box wider than the window's low end is
                // copied into every cell it covers, which the choice accounts for.
                Some(_) if group.len() > TABLE_MIN => {
                    let bits = (group.len() / 4).ilog2().clamp(4, 16);
                    let mask = (1u32 << bits) - 1;
                    let cells_of = |i: u32, slot: usize, shift: u32| {
                        let [lo, hi] = boxes[i as usize].1[slot];
                        let (a, z) = (lo >> shift, hi >> shift);
                        // Covering the whole ring of cells: every cell, once.
                        let (a, z) = if z - a >= mask { (0, mask) } else { (a, z) };
                        (a..=z).map(move |v| (v & mask) as usize)
                    };
                    // Σ load²: the expected boxes behind a random cell. Windows that copy boxes
                    // into more than twice as many cells as there are boxes are refused.
                    let spread = |slot: usize, shift: u32| {
                        let mut load = vec![0u64; 1 << bits];
                        for &i in &group {
                            for c in cells_of(i, slot, shift) {
                                load[c] += 1;
                            }
                        }
                        let copies: u64 = load.iter().sum();
                        if copies > 2 * group.len() as u64 { u64::MAX } else { load.iter().map(|l| l * l).sum::<u64>() }
                    };
                    let best = table_slots
                        .iter()
                        .flat_map(|&slot| (0..=32 - bits).map(move |sh| (slot, sh)))
                        .map(|(slot, sh)| (spread(slot, sh), slot, sh))
                        .min()
                        .filter(|b| b.0 != u64::MAX);
                    let Some((_, slot, shift)) = best else {
                        // Every window copies too much: a plain tree.
                        let (node, depth) = b.node(group, [[0, u32::MAX]; DIMS], 0);
                        roots.push(Root { node, table: None, best_rule, depth });
                        continue;
                    };
                    let mut per_cell: Vec<Vec<u32>> = vec![Vec::new(); 1 << bits];
                    for &i in &group {
                        for c in cells_of(i, slot, shift) {
                            per_cell[c].push(i);
                        }
                    }
                    let first = cells.len() as u32;
                    let mut depth = 0;
                    for (c, items) in per_cell.into_iter().enumerate() {
                        let mut region = [[0, u32::MAX]; DIMS];
                        if shift == 32 - bits {
                            // The top bits: each cell is one interval of the slot.
                            region[slot] = [(c as u32) << shift, ((c as u32) << shift) | (u32::MAX >> bits)];
                        }
                        let (node, d) = b.node(items, region, 0);
                        cells.push(node);
                        depth = depth.max(d);
                    }
                    Root { node: 0, table: Some(Table { slot: slot as u32, shift, mask, first }), best_rule, depth }
                }
                _ => {
                    let (node, depth) = b.node(group, [[0, u32::MAX]; DIMS], 0);
                    Root { node, table: None, best_rule, depth }
                }
            };
            roots.push(root);
        }
        roots.sort_by_key(|r| r.best_rule);
        Forest {
            roots,
            cells,
            nodes: b.nodes,
            leaf_span: b.leaf_span,
            entries: b.entries,
            constraints: b.constraints,
            boxes: boxes.len(),
        }
    }

    /// Sizes of the forest.
    pub fn stats(&self) -> ForestStats {
        let leaves = self.leaf_span.iter().filter(|s| s.1 > 0 || s.0 > 0);
        ForestStats {
            trees: self.roots.len(),
            nodes: self.nodes.len(),
            leaves: self.nodes.iter().enumerate().filter(|(i, n)| n.left == *i as u32).count(),
            largest_leaf: leaves.map(|s| s.1 as usize).max().unwrap_or(0),
            leaf_entries: self.entries.len(),
            boxes: self.boxes,
            bytes: self.cells.len() * 4
                + self.nodes.len() * size_of::<Node>()
                + self.leaf_span.len() * 8
                + self.entries.len() * size_of::<LeafEntry>()
                + self.constraints.len() * size_of::<Constraint>(),
            depth: self.roots.iter().map(|r| r.depth as usize).max().unwrap_or(0),
        }
    }

    /// Scans leaf `node` for the first box holding `key` with a rule below `best`.
    #[inline]
    fn scan_leaf(&self, node: u32, key: &Key, best: u32) -> u32 {
        let (first, count) = self.leaf_span[node as usize];
        let mut found = best;
        // Entries are in priority order: stop at the first that cannot beat the best match.
        // Each entry's checks run without a branch apiece.
        for e in &self.entries[first as usize..(first + count) as usize] {
            if e.rule >= found {
                break;
            }
            let mut ok = e.holds_inline(key);
            if e.count > 0 && ok {
                let cs = &self.constraints[e.first as usize..(e.first + e.count) as usize];
                ok = cs.iter().all(|c| {
                    let v = key.0[c.slot as usize];
                    c.lo <= v && v <= c.hi
                });
            }
            found = if ok { found.min(e.rule) } else { found };
        }
        found
    }

    /// The lowest rule index whose box holds `key`.
    #[inline]
    pub fn first_match(&self, key: &Key) -> Option<u32> {
        let mut best = u32::MAX;
        for root in &self.roots {
            if root.best_rule >= best {
                break; // roots are sorted by their best rule: none can beat `best` now
            }
            let mut at = root.start(&self.cells, key);
            loop {
                let n = self.nodes[at as usize];
                if n.min_rule >= best {
                    break; // nothing below can beat `best`
                }
                let next = if key.0[n.slot as usize] <= n.point { n.left } else { n.right };
                if next == at {
                    best = self.scan_leaf(at, key, best);
                    break;
                }
                at = next;
            }
        }
        (best != u32::MAX).then_some(best)
    }

    /// [`Forest::first_match`] for many keys at once, written to `out`: keys go through each
    /// tree [`LANES`] at a time, in lockstep, so that their node loads overlap.
    pub fn first_match_batch(&self, keys: &[&Key], out: &mut [Option<u32>]) {
        for (keys, out) in keys.chunks(LANES).zip(out.chunks_mut(LANES)) {
            let mut best = [u32::MAX; LANES];
            for root in &self.roots {
                if best[..keys.len()].iter().all(|&b| b <= root.best_rule) {
                    continue;
                }
                let mut at = [0; LANES];
                for (k, key) in keys.iter().enumerate() {
                    at[k] = root.start(&self.cells, key);
                }
                for _ in 0..root.depth {
                    for (k, key) in keys.iter().enumerate() {
                        let n = self.nodes[at[k] as usize];
                        // Branch-free: a leaf's test always takes `left`, itself.
                        at[k] = if key.0[n.slot as usize] <= n.point { n.left } else { n.right };
                    }
                }
                for (k, key) in keys.iter().enumerate() {
                    best[k] = self.scan_leaf(at[k], key, best[k]);
                }
            }
            for (o, b) in out.iter_mut().zip(best) {
                *o = (b != u32::MAX).then_some(b);
            }
        }
    }
}

/// Splits box indices into up to four groups by narrowness in the two address slots the
/// most boxes are narrow in; returns the groups and those two slots.
fn groups(boxes: &[(u32, Bounds)]) -> ([Vec<u32>; 4], [usize; 2]) {
    let width = |b: &Bounds, s: usize| u64::from(b[s][1]) - u64::from(b[s][0]);
    let address = [Dim::Src0, Dim::Src1, Dim::Src2, Dim::Src3, Dim::Dst0, Dim::Dst1, Dim::Dst2, Dim::Dst3];
    let mut counts: Vec<(usize, usize)> = address
        .iter()
        .map(|&d| (boxes.iter().filter(|(_, b)| width(b, d as usize) < NARROW).count(), d as usize))
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.0));
    let (s1, s2) = (counts[0].1, counts[1].1);
    let mut out: [Vec<u32>; 4] = Default::default();
    for (i, (_, b)) in boxes.iter().enumerate() {
        let g = usize::from(width(b, s1) >= NARROW) | (usize::from(width(b, s2) >= NARROW) << 1);
        out[g].push(i as u32);
    }
    (out, [s1, s2])
}

struct Builder<'a> {
    boxes: &'a [(u32, Bounds)],
    nodes: Vec<Node>,
    leaf_span: Vec<(u32, u32)>,
    entries: Vec<LeafEntry>,
    constraints: Vec<Constraint>,
}

impl Builder<'_> {
    /// A leaf for `items` in `region`: each box keeps only the constraints the region does
    /// not already imply (a slot the walk has narrowed to inside the box's range needs no
    /// check).
    fn leaf(&mut self, items: &[u32], region: &Bounds) -> u32 {
        let start = self.entries.len() as u32;
        for &i in items {
            let (rule, b) = &self.boxes[i as usize];
            let mut e = LeafEntry {
                rule: *rule,
                slot: [0; INLINE],
                lo: [0; INLINE],
                span: [u32::MAX; INLINE],
                first: 0,
                count: 0,
            };
            let mut inline = 0;
            e.first = self.constraints.len() as u32;
            for (slot, (r, g)) in b.iter().zip(region).enumerate() {
                if r[0] <= g[0] && g[1] <= r[1] {
                    continue; // the region already implies it
                }
                if inline < INLINE {
                    (e.slot[inline], e.lo[inline], e.span[inline]) = (slot as u8, r[0], r[1] - r[0]);
                    inline += 1;
                } else {
                    self.constraints.push(Constraint { slot: slot as u8, lo: r[0], hi: r[1] });
                }
            }
            e.count = self.constraints.len() as u32 - e.first;
            self.entries.push(e);
        }
        let min_rule = items.first().map_or(u32::MAX, |&i| self.boxes[i as usize].0);
        let me = self.nodes.len() as u32;
        self.nodes.push(Node { slot: 0, point: u32::MAX, left: me, right: me, min_rule });
        self.leaf_span.push((start, items.len() as u32));
        me
    }

    /// Builds the subtree for `items` (box indices in priority order) within `region`;
    /// returns its root and the number of steps from it to its deepest leaf.
    fn node(&mut self, mut items: Vec<u32>, region: Bounds, depth: usize) -> (u32, u32) {
        // A box that covers the whole region hides every box after it.
        if let Some(cover) = items.iter().position(|&i| covers(&self.boxes[i as usize].1, &region)) {
            items.truncate(cover + 1);
        }
        if items.len() <= LEAF_SIZE || depth >= MAX_DEPTH {
            return (self.leaf(&items, &region), 0);
        }
        let Some((slot, point)) = self.best_cut(&items, &region) else {
            return (self.leaf(&items, &region), 0);
        };
        let (mut left_region, mut right_region) = (region, region);
        left_region[slot][1] = point;
        right_region[slot][0] = point + 1;
        let left: Vec<u32> = items.iter().copied().filter(|&i| self.boxes[i as usize].1[slot][0] <= point).collect();
        let right: Vec<u32> = items.iter().copied().filter(|&i| self.boxes[i as usize].1[slot][1] > point).collect();
        let me = self.nodes.len();
        let min_rule = self.boxes[items[0] as usize].0;
        self.nodes.push(Node { slot: slot as u32, point, left: 0, right: 0, min_rule });
        self.leaf_span.push((0, 0));
        drop(items);
        let (l, ld) = self.node(left, left_region, depth + 1);
        let (r, rd) = self.node(right, right_region, depth + 1);
        self.nodes[me].left = l;
        self.nodes[me].right = r;
        (me as u32, 1 + ld.max(rd))
    }

    /// The cut that leaves the fewest boxes on its larger side (ties: fewest copies), or
    /// `None` when no cut puts fewer boxes on each side than the node holds.
    fn best_cut(&self, items: &[u32], region: &Bounds) -> Option<(usize, u32)> {
        let n = items.len();
        let mut best: Option<(usize, usize, usize, u32)> = None; // (larger side, sum, slot, point)
        let mut los = Vec::with_capacity(n);
        let mut his = Vec::with_capacity(n);
        for (slot, &[rlo, rhi]) in region.iter().enumerate() {
            if rlo == rhi {
                continue;
            }
            los.clear();
            his.clear();
            for &i in items {
                let [lo, hi] = self.boxes[i as usize].1[slot];
                los.push(lo.max(rlo));
                his.push(hi.min(rhi));
            }
            // Only boxes with an end strictly inside the region make a cut useful.
            if los.iter().all(|&l| l == rlo) && his.iter().all(|&h| h == rhi) {
                continue;
            }
            los.sort_unstable();
            his.sort_unstable();
            // Candidate points: every box end below the region's top, and every start - 1.
            let candidates =
                his.iter().copied().filter(|&h| h < rhi).chain(los.iter().filter(|&&l| l > rlo).map(|&l| l - 1));
            for p in candidates {
                let left = los.partition_point(|&l| l <= p);
                let right = n - his.partition_point(|&h| h <= p);
                let key = (left.max(right), left + right);
                if best.is_none_or(|b| key < (b.0, b.1)) {
                    best = Some((key.0, key.1, slot, p));
                }
            }
        }
        best.filter(|b| b.0 < n).map(|b| (b.2, b.3))
    }
}

fn covers(b: &Bounds, region: &Bounds) -> bool {
    b.iter().zip(region).all(|(r, g)| r[0] <= g[0] && g[1] <= r[1])
}
