//! The compiled lookup structure: a small forest of decision trees over boxes.
//!
//! Boxes (one inclusive `[lo, hi]` per key slot, see `compile`) are first split into up to
//! four groups by whether they are narrow in the two address slots most rules are narrow in
//! (CutSplit's idea: a rule that is wide in a slot would be copied into every subtree that
//! cuts that slot, so it goes where that slot is never cut first). Each group gets a binary
//! decision tree in the manner of HyperSplit: a node tests `key[slot] <= point`, chosen so
//! that the larger side holds as few boxes as possible; a leaf lists at most [`LEAF_SIZE`]
//! boxes (more where no cut separates them), in priority order, checked slot by slot.
//!
//! A lookup walks every tree whose best rule could still beat the best match so far, and
//! stops scanning a leaf at the first box that matches or cannot beat it. Nodes are flat
//! 16-byte records in one array per forest, so a walk is a chain of loads and compares with
//! no pointers and no allocation.

use crate::compile::Bounds;
use crate::field::{DIMS, Dim, Key};

/// Boxes per leaf the builder aims for.
pub const LEAF_SIZE: usize = 8;
/// Depth at which a node becomes a leaf whatever its size.
const MAX_DEPTH: usize = 48;
/// Slots narrower than this are "narrow" for grouping (a /16 within a 32-bit word).
const NARROW: u64 = 1 << 16;
/// Marks a leaf in [`Node::slot`].
const LEAF: u32 = u32::MAX;

/// A tree node: a split (`slot`, `point`, children) or a leaf (`slot == LEAF`, then `point`
/// is the first entry in [`Forest::leaf_boxes`] and `left` the count).
#[derive(Clone, Copy, Debug)]
struct Node {
    slot: u32,
    point: u32,
    left: u32,
    right: u32,
}

/// One box's constraints, stored as a run in [`Forest::constraints`].
#[derive(Clone, Copy, Debug)]
struct BoxRef {
    rule: u32,
    first: u32,
    count: u32,
}

/// A constrained slot of a box.
#[derive(Clone, Copy, Debug)]
struct Constraint {
    slot: u8,
    lo: u32,
    hi: u32,
}

/// A tree's root and the best (lowest) rule index in it.
#[derive(Clone, Copy, Debug)]
struct Root {
    node: u32,
    best_rule: u32,
}

/// The compiled forest.
#[derive(Clone, Debug, Default)]
pub struct Forest {
    roots: Vec<Root>,
    nodes: Vec<Node>,
    leaf_boxes: Vec<u32>,
    boxes: Vec<BoxRef>,
    constraints: Vec<Constraint>,
}

/// Sizes, for reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForestStats {
    /// Trees.
    pub trees: usize,
    /// Nodes, leaves included.
    pub nodes: usize,
    /// Box references held by leaves (copies included).
    pub leaf_entries: usize,
    /// Boxes.
    pub boxes: usize,
    /// Bytes of the lookup arrays.
    pub bytes: usize,
    /// Deepest leaf.
    pub depth: usize,
    /// Most boxes in one leaf.
    pub largest_leaf: usize,
    /// Leaves.
    pub leaves: usize,
}

impl Forest {
    /// Builds a forest over `boxes`, given as `(rule index, bounds)` in priority order
    /// (rule indices ascending).
    pub fn build(boxes: &[(u32, Bounds)]) -> Forest {
        let mut f = Forest::default();
        for (rule, b) in boxes {
            let first = f.constraints.len() as u32;
            for (slot, r) in b.iter().enumerate() {
                if *r != [0, u32::MAX] {
                    f.constraints.push(Constraint { slot: slot as u8, lo: r[0], hi: r[1] });
                }
            }
            f.boxes.push(BoxRef { rule: *rule, first, count: f.constraints.len() as u32 - first });
        }
        let mut builder = Builder { boxes, nodes: Vec::new(), leaf_boxes: Vec::new(), depth: 0 };
        for group in groups(boxes) {
            if group.is_empty() {
                continue;
            }
            let best_rule = boxes[group[0] as usize].0;
            let node = builder.node(group, [[0, u32::MAX]; DIMS], 0);
            f.roots.push(Root { node, best_rule });
        }
        f.roots.sort_by_key(|r| r.best_rule);
        f.nodes = builder.nodes;
        f.leaf_boxes = builder.leaf_boxes;
        f
    }

    /// Sizes of the forest.
    pub fn stats(&self) -> ForestStats {
        let depth = self.roots.iter().map(|r| self.depth(r.node)).max().unwrap_or(0);
        ForestStats {
            trees: self.roots.len(),
            nodes: self.nodes.len(),
            leaf_entries: self.leaf_boxes.len(),
            boxes: self.boxes.len(),
            bytes: self.nodes.len() * size_of::<Node>()
                + self.leaf_boxes.len() * 4
                + self.boxes.len() * size_of::<BoxRef>()
                + self.constraints.len() * size_of::<Constraint>(),
            depth,
            largest_leaf: self.nodes.iter().filter(|n| n.slot == LEAF).map(|n| n.left as usize).max().unwrap_or(0),
            leaves: self.nodes.iter().filter(|n| n.slot == LEAF).count(),
        }
    }

    fn depth(&self, node: u32) -> usize {
        let n = self.nodes[node as usize];
        if n.slot == LEAF { 1 } else { 1 + self.depth(n.left).max(self.depth(n.right)) }
    }

    /// The lowest rule index whose box holds `key`.
    #[inline]
    pub fn first_match(&self, key: &Key) -> Option<u32> {
        let mut best = u32::MAX;
        for root in &self.roots {
            if root.best_rule >= best {
                break; // roots are sorted by their best rule: none can beat `best` now
            }
            let mut n = self.nodes[root.node as usize];
            while n.slot != LEAF {
                let next = if key.0[n.slot as usize] <= n.point { n.left } else { n.right };
                n = self.nodes[next as usize];
            }
            let leaf = &self.leaf_boxes[n.point as usize..(n.point + n.left) as usize];
            for &b in leaf {
                let b = self.boxes[b as usize];
                if b.rule >= best {
                    break; // leaves are in priority order
                }
                let cs = &self.constraints[b.first as usize..(b.first + b.count) as usize];
                if cs.iter().all(|c| {
                    let v = key.0[c.slot as usize];
                    c.lo <= v && v <= c.hi
                }) {
                    best = b.rule;
                    break;
                }
            }
        }
        (best != u32::MAX).then_some(best)
    }
}

/// Splits box indices into up to four groups by narrowness in two address slots.
fn groups(boxes: &[(u32, Bounds)]) -> [Vec<u32>; 4] {
    let width = |b: &Bounds, s: usize| u64::from(b[s][1]) - u64::from(b[s][0]);
    // The two address slots the most boxes are narrow in.
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
    out
}

struct Builder<'a> {
    boxes: &'a [(u32, Bounds)],
    nodes: Vec<Node>,
    leaf_boxes: Vec<u32>,
    depth: usize,
}

impl Builder<'_> {
    fn leaf(&mut self, items: &[u32]) -> u32 {
        let start = self.leaf_boxes.len() as u32;
        self.leaf_boxes.extend_from_slice(items);
        self.nodes.push(Node { slot: LEAF, point: start, left: items.len() as u32, right: 0 });
        self.nodes.len() as u32 - 1
    }

    /// Builds the subtree for `items` (box indices in priority order) within `region`.
    fn node(&mut self, mut items: Vec<u32>, region: Bounds, depth: usize) -> u32 {
        self.depth = self.depth.max(depth);
        // A box that covers the whole region hides every box after it.
        if let Some(cover) = items.iter().position(|&i| covers(&self.boxes[i as usize].1, &region)) {
            items.truncate(cover + 1);
        }
        if items.len() <= LEAF_SIZE || depth >= MAX_DEPTH {
            return self.leaf(&items);
        }
        let Some((slot, point)) = self.best_cut(&items, &region) else {
            return self.leaf(&items);
        };
        let (mut left_region, mut right_region) = (region, region);
        left_region[slot][1] = point;
        right_region[slot][0] = point + 1;
        let left: Vec<u32> = items.iter().copied().filter(|&i| self.boxes[i as usize].1[slot][0] <= point).collect();
        let right: Vec<u32> = items.iter().copied().filter(|&i| self.boxes[i as usize].1[slot][1] > point).collect();
        let me = self.nodes.len();
        self.nodes.push(Node { slot: slot as u32, point, left: 0, right: 0 });
        drop(items);
        let l = self.node(left, left_region, depth + 1);
        let r = self.node(right, right_region, depth + 1);
        self.nodes[me].left = l;
        self.nodes[me].right = r;
        me as u32
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
