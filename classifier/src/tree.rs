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
//! Lookups read a key through its [`PROJECTED`] most constrained slots, copied once into a
//! small array. A leaf is a node whose test always fails and leads back to itself, so a
//! walk can take a fixed number of steps without a branch on "is this a leaf?":
//! [`Forest::first_match_batch`] walks eight keys through a tree in lockstep, their
//! independent loads overlapping, and only the keys whose best match so far a tree could
//! still beat walk it. [`Forest::first_match`] walks one key and stops early where a subtree
//! cannot beat the best match found so far. Nodes are flat 16-byte records in one array
//! and leaf boxes one cache line each: no pointers, no allocation per lookup.
//!
//! A forest of at most [`LISTED_BOXES`] boxes (a DoS rule or two, a TCP protection rule) is
//! looked up in a plain list of its boxes instead ([`BoxList`]): for so few, testing each
//! box's constrained slots in turn costs a fraction of projecting the key and walking.

use crate::compile::Bounds;
use crate::field::{DIMS, Dim, Key};
use crate::list::MEMBER_SLOTS;

/// Boxes per leaf the builder aims for. One: a cut costs one dependent load, a leaf entry
/// a cache line and its checks, and on the ClassBench sets splitting down to single boxes
/// made lookups 1.2–2x faster than leaves of 8 (measured when entries were six scalar
/// checks; see the history of docs/benchmarks.md) at no cost in build time or memory worth
/// noting (the boxes that are copied most are the wide ones, which stop the splitting early).
pub const LEAF_SIZE: usize = 1;
/// Keys walked together by [`Forest::first_match_batch`].
pub const LANES: usize = 8;
/// Keys [`Forest::first_match_batch`] takes through the forest together (at most 256: a
/// key's place in a block is a `u8`).
const BLOCK: usize = 64;
/// Depth at which a node becomes a leaf whatever its size.
const MAX_DEPTH: usize = 48;
/// Leaf entries per box past which every node still to be built becomes a leaf. A cut
/// copies the boxes it crosses to both sides, and boxes that overlap everywhere (or differ
/// only in slots outside the projection, which are never cut) would be copied into every
/// one of up to 2^MAX_DEPTH leaves. The ClassBench sets stay below 3.
const ENTRIES_PER_BOX: usize = 32;
/// Groups larger than this get a root table.
const TABLE_MIN: usize = 32;
/// Forests of at most this many boxes are looked up in their [`BoxList`]: a key is tested
/// against a box in a few instructions per slot the box constrains, where a walk first
/// projects the key (25 instructions) and a one-box forest's lookup took about 130 a key.
const LISTED_BOXES: usize = 4;
/// Slots narrower than this are "narrow" for grouping (a /16 within a 32-bit word).
const NARROW: u64 = 1 << 16;

/// A tree node. A key goes to `child[1]` when `key[slot] > point`, else to `child[0]`
/// (`slot` is a place in the projected key). A leaf has `point == u32::MAX`, so that its
/// test always fails, `child[0]` itself, and `child[1]` its first entry (its entries run
/// to the first without `more`; entry 0 is the empty leaf's).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Node {
    slot: u32,
    point: u32,
    child: [u32; 2],
}

impl Node {
    #[inline(always)]
    fn step(&self, key: &Projected) -> u32 {
        self.child[usize::from(key[self.slot as usize % PROJECTED] > self.point)]
    }

    fn is_leaf(&self, me: u32) -> bool {
        self.child[0] == me
    }
}

/// Slots of a projected key: a forest reads keys only through the [`PROJECTED`] slots its
/// boxes constrain most (all of them for ClassBench's five-tuples), copied once per lookup
/// into one small array, so that a node's or a leaf's slot number indexes it without a
/// bounds check and a leaf's checks are a few vector instructions. Constraints on other
/// slots stay in [`Forest::constraints`] and are checked against the key itself.
const PROJECTED: usize = 8;
type Projected = [u32; PROJECTED];

/// A box in a leaf, over the projected key: `key - lo <= span` (wrapping) in every slot
/// tests `lo <= key <= hi` in one compare. A slot the leaf's region already implies, or
/// that the box leaves whole, has `lo = 0, span = u32::MAX`. One cache line: an entry is a
/// walk's last dependent load.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct EntryBox {
    lo: Projected,
    span: Projected,
}

impl EntryBox {
    #[inline(always)]
    fn holds(&self, key: &Projected) -> bool {
        // No early exit, so that the compiler vectorises it.
        let mut ok = true;
        for ((&k, &lo), &span) in key.iter().zip(&self.lo).zip(&self.span) {
            ok &= k.wrapping_sub(lo) <= span;
        }
        ok
    }
}

/// The rest of a leaf entry: its rule, whether the next entry belongs to the same leaf,
/// and its constraints on slots outside the projection (`constraints[first..][..count]`).
#[derive(Clone, Copy, Debug)]
struct EntryMeta {
    rule: u32,
    first: u32,
    count: u8,
    more: bool,
}

const _: () = assert!(DIMS <= u8::MAX as usize && PROJECTED.is_power_of_two());

/// Entry 0: the empty leaf's, which never matches.
const EMPTY_BOX: EntryBox = EntryBox { lo: [0; PROJECTED], span: [0; PROJECTED] };
const EMPTY_META: EntryMeta = EntryMeta { rule: u32::MAX, first: 0, count: 0, more: false };

/// A constrained slot of a box.
#[derive(Clone, Copy, Debug)]
struct Constraint {
    slot: u8,
    lo: u32,
    hi: u32,
}

/// A tree: its root node, or a table of root nodes indexed by a window of bits of one
/// projected slot; the best (lowest) rule index in it; its depth below the root (or the
/// deepest below the table).
#[derive(Clone, Copy, Debug)]
struct Root {
    node: u32,
    table: Option<Table>,
    best_rule: u32,
    depth: u32,
}

/// A root table: `cells[first + ((key[slot] >> shift) & mask)]` is the subtree for that key
/// and its depth (`slot` a place in the projected key).
#[derive(Clone, Copy, Debug)]
struct Table {
    slot: u32,
    shift: u32,
    mask: u32,
    first: u32,
}

impl Root {
    /// The node a walk of `key` starts at, and the depth below it.
    #[inline]
    fn start(&self, cells: &[(u32, u32)], key: &Projected) -> (u32, u32) {
        match self.table {
            None => (self.node, self.depth),
            Some(t) => cells[(t.first + ((key[t.slot as usize % PROJECTED] >> t.shift) & t.mask)) as usize],
        }
    }
}

/// The compiled forest.
#[derive(Clone, Debug, Default)]
pub struct Forest {
    /// The key slot behind each projected slot.
    projection: Projection,
    roots: Vec<Root>,
    /// Root tables' cells: a subtree and its depth.
    cells: Vec<(u32, u32)>,
    nodes: Vec<Node>,
    /// The best rule below each node.
    min_rule: Vec<u32>,
    entry_boxes: Vec<EntryBox>,
    entry_meta: Vec<EntryMeta>,
    constraints: Vec<Constraint>,
    boxes: usize,
    /// The boxes as a list, for a forest of one to [`LISTED_BOXES`]: lookups then take it
    /// rather than the trees.
    list: Option<BoxList>,
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
        Forest::build_conditional(boxes, &[])
    }

    /// [`Forest::build`] for boxes some of which hold only when a check outside the key
    /// holds too (`conditional[rule]`, a byte test): such a box does not hide the boxes
    /// behind it, since a lookup may go on past it ([`Forest::first_match_from`]).
    pub fn build_conditional(boxes: &[(u32, Bounds)], conditional: &[bool]) -> Forest {
        Forest::build_within(boxes, conditional, usize::MAX).expect("an unbounded forest is always built")
    }

    /// [`Forest::build_conditional`], or `None` once its arrays pass `max_bytes`
    /// ([`ForestStats::bytes`]): the build stops there, so that a bound on a
    /// configuration's memory holds while its rules are compiled, not only after.
    pub fn build_within(boxes: &[(u32, Bounds)], conditional: &[bool], max_bytes: usize) -> Option<Forest> {
        let (projection, position) = projection(boxes);
        let mut b = Builder::new(boxes, conditional, position, max_bytes);
        let mut roots = Vec::new();
        let mut cells = Vec::new();
        let (groups, table_slots) = groups(boxes, &position);
        let projected_slots: Vec<usize> = (0..DIMS).filter(|&s| position[s] != UNPROJECTED).collect();
        for group in tree_groups(boxes, conditional, groups) {
            if b.over {
                break; // refused anyway: no more trees to fill with empty leaves
            }
            if group.is_empty() {
                continue;
            }
            let best_rule = boxes[group[0] as usize].0;
            // A table on a window of bits of a slot replaces the first levels of the tree.
            let window = match table_slots.first() {
                Some(_) if group.len() > TABLE_MIN => table_window(boxes, &group, &projected_slots),
                _ => None,
            };
            let root = match window {
                Some(window) => b.table(&group, window, &mut cells, best_rule),
                None => {
                    let (node, depth) = b.node(group, [[0, u32::MAX]; DIMS], 0);
                    Root { node, table: None, best_rule, depth }
                }
            };
            roots.push(root);
        }
        // None without boxes: the lookups' own test of that is cheaper still.
        let list = (1..=LISTED_BOXES).contains(&boxes.len()).then(|| BoxList::new(boxes));
        let list_bytes = list.as_ref().map_or(0, BoxList::bytes);
        if b.over || b.bytes() + cells.len() * size_of::<(u32, u32)>() + list_bytes > max_bytes {
            return None;
        }
        roots.sort_by_key(|r| r.best_rule);
        Some(Forest {
            projection,
            roots,
            cells,
            nodes: b.nodes,
            min_rule: b.min_rule,
            entry_boxes: b.entry_boxes,
            entry_meta: b.entry_meta,
            constraints: b.constraints,
            boxes: boxes.len(),
            list,
        })
    }

    /// Sizes of the forest.
    pub fn stats(&self) -> ForestStats {
        let leaf_sizes = self.entry_meta[1..].split_inclusive(|e| !e.more).map(<[_]>::len);
        ForestStats {
            trees: self.roots.len(),
            nodes: self.nodes.len(),
            leaves: self.nodes.iter().enumerate().filter(|(i, n)| n.is_leaf(*i as u32)).count(),
            largest_leaf: leaf_sizes.max().unwrap_or(0),
            leaf_entries: self.entry_meta.len() - 1,
            boxes: self.boxes,
            bytes: self.cells.len() * size_of::<(u32, u32)>()
                + array_bytes(self.nodes.len(), self.entry_meta.len(), self.constraints.len())
                + self.list.as_ref().map_or(0, BoxList::bytes),
            depth: self.roots.iter().map(|r| r.depth as usize).max().unwrap_or(0),
        }
    }

    /// `key`'s projected slots.
    #[inline(always)]
    fn project(&self, key: &Key) -> Projected {
        let mut p = [0; PROJECTED];
        for (v, &s) in p.iter_mut().zip(&self.projection.0) {
            *v = key.get(s);
        }
        p
    }

    /// Scans leaf `leaf` for the first box holding `key` (`projected` its projection) with a
    /// rule below `best`.
    #[inline]
    fn scan_leaf(&self, leaf: u32, key: &Key, projected: &Projected, best: u32) -> u32 {
        self.scan_leaf_from::<false>(leaf, key, projected, best, 0)
    }

    /// [`Forest::scan_leaf`], skipping rules below `floor` when `FLOORED`.
    #[inline(always)]
    fn scan_leaf_from<const FLOORED: bool>(
        &self,
        leaf: u32,
        key: &Key,
        projected: &Projected,
        best: u32,
        floor: u32,
    ) -> u32 {
        let mut at = self.nodes[leaf as usize].child[1] as usize;
        // Entries are in priority order: the first that holds is the leaf's best, and none
        // from the first that cannot beat `best` on can.
        while let (Some(e), Some(b)) = (self.entry_meta.get(at), self.entry_boxes.get(at)) {
            if e.rule >= best {
                break;
            }
            let mut ok = !FLOORED || e.rule >= floor;
            ok = ok && b.holds(projected);
            if e.count > 0 && ok {
                let cs = &self.constraints[e.first as usize..][..usize::from(e.count)];
                ok = cs.iter().all(|c| {
                    let v = key.0[usize::from(c.slot)];
                    c.lo <= v && v <= c.hi
                });
            }
            if ok {
                return e.rule;
            }
            if !e.more {
                break;
            }
            at += 1;
        }
        best
    }

    /// The lowest rule index whose box holds `key`.
    #[inline]
    pub fn first_match(&self, key: &Key) -> Option<u32> {
        self.walk::<false>(key, 0)
    }

    /// The lowest rule index from `floor` on whose box holds `key`: the next candidate when
    /// the one before it failed a check the boxes cannot hold (a byte test).
    pub fn first_match_from(&self, key: &Key, floor: u32) -> Option<u32> {
        self.walk::<true>(key, floor)
    }

    /// The lowest rule from `floor` on whose box holds `key` and which `accept` takes (a
    /// byte test the key cannot answer). Each tree is walked once and the leaves' entries
    /// are merged in rule order, each looked at once: going on from each refused candidate
    /// with [`Forest::first_match_from`] walked the forest again and rescanned the leaf from
    /// its start, quadratic in the candidates (N signatures behind one header test cost N
    /// walks and N²/2 entry visits a packet).
    pub fn first_match_where(&self, key: &Key, floor: u32, mut accept: impl FnMut(u32) -> bool) -> Option<u32> {
        if let Some(list) = &self.list {
            let mut refused = None;
            for rule in list.holding(key, floor) {
                // A rule of several boxes is offered once (its boxes are next to each other).
                if refused == Some(rule) {
                    continue;
                }
                if accept(rule) {
                    return Some(rule);
                }
                refused = Some(rule);
            }
            return None;
        }
        // At most six trees (`tree_groups`: four address groups, the conditional boxes,
        // the list tests), merged at once; a forest of more would go on from each refused
        // candidate, as lookups once did.
        const CURSORS: usize = 6;
        let n = self.roots.len();
        if n > CURSORS {
            let mut found = self.first_match_from(key, floor);
            while let Some(rule) = found {
                if accept(rule) {
                    return Some(rule);
                }
                found = self.first_match_from(key, rule.checked_add(1)?);
            }
            return None;
        }
        let projected = self.project(key);
        // Per tree: the entry of its next candidate and that candidate's rule (MAX: none).
        let mut at = [0usize; CURSORS];
        let mut rule = [u32::MAX; CURSORS];
        for (k, root) in self.roots.iter().enumerate() {
            let mut node = root.start(&self.cells, &projected).0;
            loop {
                let next = self.nodes[node as usize].step(&projected);
                if next == node {
                    break;
                }
                node = next;
            }
            (at[k], rule[k]) = self.next_holding(self.nodes[node as usize].child[1] as usize, key, &projected, floor);
        }
        loop {
            let lowest = rule.iter().copied().min().unwrap_or(u32::MAX);
            if lowest == u32::MAX {
                return None;
            }
            if accept(lowest) {
                return Some(lowest);
            }
            // Every tree holding the refused rule moves past it.
            for k in 0..n {
                if rule[k] == lowest {
                    (at[k], rule[k]) = match self.entry_meta.get(at[k]) {
                        Some(e) if e.more => self.next_holding(at[k] + 1, key, &projected, lowest + 1),
                        _ => (0, u32::MAX),
                    };
                }
            }
        }
    }

    /// From entry `at` of a leaf on, the first whose box holds `key` with a rule from
    /// `floor` on: (entry, rule), or (0, MAX) when none does.
    fn next_holding(&self, mut at: usize, key: &Key, projected: &Projected, floor: u32) -> (usize, u32) {
        while let (Some(e), Some(b)) = (self.entry_meta.get(at), self.entry_boxes.get(at)) {
            if e.rule == u32::MAX {
                break;
            }
            if e.rule >= floor
                && b.holds(projected)
                && (e.count == 0
                    || self.constraints[e.first as usize..][..usize::from(e.count)].iter().all(|c| {
                        let v = key.0[usize::from(c.slot)];
                        c.lo <= v && v <= c.hi
                    }))
            {
                return (at, e.rule);
            }
            if !e.more {
                break;
            }
            at += 1;
        }
        (0, u32::MAX)
    }

    #[inline(always)]
    fn walk<const FLOORED: bool>(&self, key: &Key, floor: u32) -> Option<u32> {
        if let Some(list) = &self.list {
            return list.holding(key, if FLOORED { floor } else { 0 }).next();
        }
        if self.roots.is_empty() {
            return None; // no box (monitor-mode rules only, or none that can match): nothing to project
        }
        let mut best = u32::MAX;
        let projected = self.project(key);
        for root in &self.roots {
            if root.best_rule >= best {
                break; // roots are sorted by their best rule: none can beat `best` now
            }
            let mut at = root.start(&self.cells, &projected).0;
            loop {
                if self.min_rule[at as usize] >= best {
                    break; // nothing below can beat `best`
                }
                let next = self.nodes[at as usize].step(&projected);
                if next == at {
                    best = self.scan_leaf_from::<FLOORED>(at, key, &projected, best, floor);
                    break;
                }
                at = next;
            }
        }
        (best != u32::MAX).then_some(best)
    }

    /// [`Forest::first_match`] for many keys at once, written to `out`: keys go through each
    /// tree [`LANES`] at a time, in lockstep, so that their node loads overlap, and a tree
    /// only with the keys it could still give a better match.
    pub fn first_match_batch(&self, keys: &[&Key], out: &mut [Option<u32>]) {
        if let Some(list) = &self.list {
            for (o, &key) in out.iter_mut().zip(keys) {
                *o = list.holding(key, 0).next();
            }
            return;
        }
        if self.roots.is_empty() {
            // No box (monitor-mode rules only, or none that can match): projecting the keys,
            // most of what a small forest's lookup costs, would find nothing.
            out.fill(None);
            return;
        }
        for (keys, out) in keys.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            let mut projected = [[0; PROJECTED]; BLOCK];
            for (p, key) in projected.iter_mut().zip(keys) {
                *p = self.project(key);
            }
            let mut best = [u32::MAX; BLOCK];
            let mut pending = [0u8; BLOCK];
            for root in &self.roots {
                // Only the keys whose best match so far this tree could beat walk it: a
                // tree of late rules is walked by few keys, in lockstep groups all the same.
                let mut n = 0;
                for (i, &b) in best[..keys.len()].iter().enumerate() {
                    pending[n] = i as u8;
                    n += usize::from(b > root.best_rule);
                }
                for group in pending[..n].chunks(LANES) {
                    // A short group is padded with its first key, so that every loop below
                    // runs exactly LANES times and unrolls.
                    let lane: [usize; LANES] = std::array::from_fn(|k| usize::from(*group.get(k).unwrap_or(&group[0])));
                    let mut at = [0; LANES];
                    let mut depth = 0;
                    for (at, &i) in at.iter_mut().zip(&lane) {
                        let (node, d) = root.start(&self.cells, &projected[i]);
                        (*at, depth) = (node, depth.max(d));
                    }
                    for _ in 0..depth {
                        for (at, &i) in at.iter_mut().zip(&lane) {
                            // Branch-free: a leaf steps to itself.
                            *at = self.nodes[*at as usize].step(&projected[i]);
                        }
                    }
                    for (&at, &i) in at.iter().zip(&lane) {
                        best[i] = self.scan_leaf(at, keys[i], &projected[i], best[i]);
                    }
                }
            }
            for (o, b) in out.iter_mut().zip(best) {
                *o = (b != u32::MAX).then_some(b);
            }
        }
    }
}

/// Marks a slot outside the projection.
const UNPROJECTED: u8 = u8::MAX;

/// The key slot behind each projected slot, as a [`Dim`] rather than its number: the
/// compiler knows a `Dim` to be below [`DIMS`], so a key is read through it without a bounds
/// check, where a `u8` slot number cost a compare and a branch at every read (16 of a key's
/// 40-odd instructions of projection, per forest it is looked up in).
#[derive(Clone, Copy, Debug)]
struct Projection([Dim; PROJECTED]);

impl Default for Projection {
    /// Slot 0 in every place, as unused places hold (a forest without boxes cuts none).
    fn default() -> Projection {
        Projection([Dim::IpVersion; PROJECTED])
    }
}

/// A forest's boxes in priority order, each as the slots it constrains: what a forest of at
/// most [`LISTED_BOXES`] boxes is looked up in.
#[derive(Clone, Debug)]
struct BoxList {
    /// Each box's rule, and where its bounds start and end in `bounds`.
    boxes: Vec<(u32, u32, u32)>,
    bounds: Vec<Bound>,
}

/// A box's range in one slot: `key[slot] - lo <= span` (wrapping) tests `lo <= key[slot] <=
/// lo + span` in one compare, as [`EntryBox`] does. The slot is a [`Dim`], read without a
/// bounds check (see [`Projection`]).
#[derive(Clone, Copy, Debug)]
struct Bound {
    slot: Dim,
    lo: u32,
    span: u32,
}

impl BoxList {
    /// `boxes` (in priority order) as a list, each with the slots it does not leave whole.
    fn new(boxes: &[(u32, Bounds)]) -> BoxList {
        let mut list = BoxList { boxes: Vec::with_capacity(boxes.len()), bounds: Vec::new() };
        for (rule, b) in boxes {
            let first = list.bounds.len() as u32;
            let constrained = b.iter().zip(Dim::ALL).filter(|(r, _)| **r != [0, u32::MAX]);
            list.bounds.extend(constrained.map(|(r, &slot)| Bound { slot, lo: r[0], span: r[1] - r[0] }));
            list.boxes.push((*rule, first, list.bounds.len() as u32));
        }
        list
    }

    /// The rules from `floor` on whose boxes hold `key`, in priority order (a rule of several
    /// boxes once for each that holds).
    #[inline]
    fn holding<'a>(&'a self, key: &'a Key, floor: u32) -> impl Iterator<Item = u32> + 'a {
        self.boxes.iter().filter_map(move |&(rule, from, to)| {
            let bounds = &self.bounds[from as usize..to as usize]; // in range: `new` made both
            let holds = rule >= floor && bounds.iter().all(|b| key.get(b.slot).wrapping_sub(b.lo) <= b.span);
            holds.then_some(rule)
        })
    }

    /// Bytes of its arrays.
    fn bytes(&self) -> usize {
        self.boxes.len() * size_of::<(u32, u32, u32)>() + self.bounds.len() * size_of::<Bound>()
    }
}

/// The slots the tree may cut on, at most [`PROJECTED`] (unused places repeat slot 0, which
/// no box is then constrained in there), and the place of each slot in them: first the slots
/// whose constraints differ between boxes, the most constrained first, then those every box
/// constrains alike. A slot all boxes constrain to one range (`tcp.flags.syn == 1` in every
/// signature) tells no box from another: ranked by count alone, six such took every place
/// from the addresses and ports that did, no cut was found, and 16,384 boxes sat in one
/// leaf that every packet scanned. (Constraints outside the projection are still checked,
/// per entry.)
fn projection(boxes: &[(u32, Bounds)]) -> (Projection, [u8; DIMS]) {
    let mut counts: Vec<(bool, usize, usize)> = (0..DIMS)
        .map(|d| {
            let mut constrained = boxes.iter().map(|(_, b)| b[d]).filter(|r| *r != [0, u32::MAX]);
            let first = constrained.next();
            let mut count = usize::from(first.is_some());
            let mut differ = false;
            for r in constrained {
                count += 1;
                differ |= Some(r) != first;
            }
            (differ, count, d)
        })
        .collect();
    // Stable: ties in slot order.
    counts.sort_by_key(|&(differ, count, _)| std::cmp::Reverse((differ, count)));
    let mut slots = Projection::default();
    let mut position = [UNPROJECTED; DIMS];
    for (place, &(_, _, slot)) in counts.iter().filter(|c| c.1 > 0).take(PROJECTED).enumerate() {
        slots.0[place] = Dim::ALL[slot];
        position[slot] = place as u8;
    }
    (slots, position)
}

/// Splits box indices into up to four groups by narrowness in the two projected address
/// slots the most boxes are narrow in; returns the groups and those slots (none when no
/// address slot is projected: then one group).
fn groups(boxes: &[(u32, Bounds)], position: &[u8; DIMS]) -> ([Vec<u32>; 4], Vec<usize>) {
    let width = |b: &Bounds, s: usize| u64::from(b[s][1]) - u64::from(b[s][0]);
    let address = [Dim::Src0, Dim::Src1, Dim::Src2, Dim::Src3, Dim::Dst0, Dim::Dst1, Dim::Dst2, Dim::Dst3];
    let mut counts: Vec<(usize, usize)> = address
        .iter()
        .filter(|&&d| position[d as usize] != UNPROJECTED)
        .map(|&d| (boxes.iter().filter(|(_, b)| width(b, d as usize) < NARROW).count(), d as usize))
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut out: [Vec<u32>; 4] = Default::default();
    let (s1, s2) = match counts[..] {
        [] => {
            out[0] = (0..boxes.len() as u32).collect();
            return (out, Vec::new());
        }
        [(_, s)] => (s, s),
        [(_, s1), (_, s2), ..] => (s1, s2),
    };
    for (i, (_, b)) in boxes.iter().enumerate() {
        let g = usize::from(width(b, s1) >= NARROW) | (usize::from(width(b, s2) >= NARROW) << 1);
        out[g].push(i as u32);
    }
    (out, vec![s1, s2])
}

/// The address groups' boxes split once more into the trees they are built into:
/// conditional boxes (signatures: a port and a byte test, wide everywhere else) get a tree
/// of their own, since among the wide boxes of their address group no cut separates them,
/// and a leaf of a hundred of them is a hundred box tests per lookup. Boxes that test a
/// list's membership slot (`ip.src in $blocked`), wide in every address, too: in the
/// wide-wide group a high-priority one would sit in every leaf and stop the tree's min-rule
/// pruning for every key (acl1 10k: 81 -> 126 ns per lookup for one such box); alone, they
/// are a tree of a node or two.
fn tree_groups(boxes: &[(u32, Bounds)], conditional: &[bool], groups: [Vec<u32>; 4]) -> Vec<Vec<u32>> {
    let is_conditional = |i: &u32| conditional.get(boxes[*i as usize].0 as usize).copied().unwrap_or(false);
    let tests_a_list = |i: &u32| MEMBER_SLOTS.iter().any(|&d| boxes[*i as usize].1[d as usize] != [0, u32::MAX]);
    let mut split: Vec<Vec<u32>> = Vec::with_capacity(6);
    let (mut own, mut lists) = (Vec::new(), Vec::new());
    for group in groups {
        let (c, rest): (Vec<u32>, Vec<u32>) = group.into_iter().partition(is_conditional);
        own.extend(c);
        let (l, rest): (Vec<u32>, Vec<u32>) = rest.into_iter().partition(tests_a_list);
        lists.extend(l);
        split.push(rest);
    }
    own.sort_unstable();
    lists.sort_unstable();
    split.extend([own, lists]);
    split
}

/// A root table's window: `bits` bits of a key slot from `shift` up.
#[derive(Clone, Copy, Debug)]
struct Window {
    slot: usize,
    shift: u32,
    bits: u32,
}

impl Window {
    /// The cells box `bounds` covers (a box wider than the window's low end is copied into
    /// every cell it covers; one covering the whole ring of cells into each, once).
    fn cells_of(self, bounds: &Bounds) -> impl Iterator<Item = usize> {
        let mask = (1u32 << self.bits) - 1;
        let [lo, hi] = bounds[self.slot];
        let (a, z) = (lo >> self.shift, hi >> self.shift);
        let (a, z) = if z - a >= mask { (0, mask) } else { (a, z) };
        (a..=z).map(move |v| (v & mask) as usize)
    }
}

/// The window of a root table for `group`. Rule sets cluster (thousands of rules in a few
/// /16s), so it is chosen, over every projected slot, to spread the boxes most evenly, by
/// Σ load² (the expected boxes behind a random cell); windows that copy boxes into more than
/// twice as many cells as there are boxes are refused, and with every window refused the
/// group gets a plain tree (`None`).
fn table_window(boxes: &[(u32, Bounds)], group: &[u32], projected_slots: &[usize]) -> Option<Window> {
    let bits = (group.len() / 4).ilog2().clamp(4, 16);
    let spread = |w: Window| {
        let mut load = vec![0u64; 1 << bits];
        let mut copies = 0;
        for &i in group {
            for c in w.cells_of(&boxes[i as usize].1) {
                load[c] += 1;
                copies += 1;
            }
            if copies > 2 * group.len() {
                return u64::MAX;
            }
        }
        load.iter().map(|l| l * l).sum::<u64>()
    };
    projected_slots
        .iter()
        .flat_map(|&slot| (0..=32 - bits).map(move |shift| Window { slot, shift, bits }))
        .map(|w| (spread(w), w.slot, w.shift))
        .min()
        .filter(|b| b.0 != u64::MAX)
        .map(|(_, slot, shift)| Window { slot, shift, bits })
}

struct Builder<'a> {
    boxes: &'a [(u32, Bounds)],
    /// Rules whose boxes hold only if a check outside the key holds too (may be short).
    conditional: &'a [bool],
    /// Each slot's place in the projection, or [`UNPROJECTED`]; only projected slots are cut.
    position: [u8; DIMS],
    /// See [`Forest::build_within`]; `over` once passed.
    max_bytes: usize,
    over: bool,
    /// See [`ENTRIES_PER_BOX`].
    entry_budget: usize,
    nodes: Vec<Node>,
    min_rule: Vec<u32>,
    /// The forest's two entry arrays, built as they are kept: a vector of (box, meta) pairs
    /// would be 128 bytes an entry (the box's alignment) and be copied once more to split.
    entry_boxes: Vec<EntryBox>,
    entry_meta: Vec<EntryMeta>,
    constraints: Vec<Constraint>,
}

/// Bytes of a forest's nodes (with their `min_rule`), leaf entries and constraints.
fn array_bytes(nodes: usize, entries: usize, constraints: usize) -> usize {
    nodes * (size_of::<Node>() + size_of::<u32>())
        + entries * (size_of::<EntryBox>() + size_of::<EntryMeta>())
        + constraints * size_of::<Constraint>()
}

impl<'a> Builder<'a> {
    /// A builder over `boxes` (their slots placed by `position`), nothing built yet.
    fn new(boxes: &'a [(u32, Bounds)], conditional: &'a [bool], position: [u8; DIMS], max_bytes: usize) -> Self {
        Builder {
            boxes,
            conditional,
            position,
            max_bytes,
            over: false,
            entry_budget: ENTRIES_PER_BOX * boxes.len(),
            nodes: Vec::new(),
            min_rule: Vec::new(),
            entry_boxes: vec![EMPTY_BOX],
            entry_meta: vec![EMPTY_META],
            constraints: Vec::new(),
        }
    }

    /// Bytes of what is built so far, root tables' cells aside.
    fn bytes(&self) -> usize {
        array_bytes(self.nodes.len(), self.entry_meta.len(), self.constraints.len())
    }

    /// A root table over `group`'s boxes in `window`: one subtree per cell, appended to
    /// `cells`.
    fn table(&mut self, group: &[u32], window: Window, cells: &mut Vec<(u32, u32)>, best_rule: u32) -> Root {
        let Window { slot, shift, bits } = window;
        let mut per_cell: Vec<Vec<u32>> = vec![Vec::new(); 1 << bits];
        for &i in group {
            for c in window.cells_of(&self.boxes[i as usize].1) {
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
            let (node, d) = self.node(items, region, 0);
            cells.push((node, d));
            depth = depth.max(d);
        }
        let table = Table { slot: u32::from(self.position[slot]), shift, mask: (1u32 << bits) - 1, first };
        Root { node: 0, table: Some(table), best_rule, depth }
    }

    /// A leaf for `items` in `region`: each box keeps only the constraints the region does
    /// not already imply (a slot the walk has narrowed to inside the box's range needs no
    /// check).
    fn leaf(&mut self, mut items: &[u32], region: &Bounds) -> u32 {
        // Past the bound on bytes, the rest is empty leaves: the forest is refused anyway.
        self.over |= self.bytes() + array_bytes(1, items.len(), 0) > self.max_bytes;
        if self.over {
            items = &[];
        }
        let start = if items.is_empty() { 0 } else { self.entry_meta.len() as u32 };
        for &i in items {
            let (rule, b) = &self.boxes[i as usize];
            let mut entry = EntryBox { lo: [0; PROJECTED], span: [u32::MAX; PROJECTED] };
            let first = self.constraints.len() as u32;
            for (slot, (r, g)) in b.iter().zip(region).enumerate() {
                if r[0] <= g[0] && g[1] <= r[1] {
                    continue; // the region already implies it
                }
                match usize::from(self.position[slot]) {
                    place @ 0..PROJECTED => (entry.lo[place], entry.span[place]) = (r[0], r[1] - r[0]),
                    _ => self.constraints.push(Constraint { slot: slot as u8, lo: r[0], hi: r[1] }),
                }
            }
            // At most DIMS - 1 (checked above that DIMS fits a u8).
            let count = (self.constraints.len() as u32 - first) as u8;
            self.entry_boxes.push(entry);
            self.entry_meta.push(EntryMeta { rule: *rule, first, count, more: true });
        }
        if let Some(last) = self.entry_meta.last_mut().filter(|_| !items.is_empty()) {
            last.more = false;
        }
        let me = self.nodes.len() as u32;
        self.nodes.push(Node { slot: 0, point: u32::MAX, child: [me, start] });
        self.min_rule.push(items.first().map_or(u32::MAX, |&i| self.boxes[i as usize].0));
        me
    }

    /// Builds the subtree for `items` (box indices in priority order) within `region`;
    /// returns its root and the number of steps from it to its deepest leaf.
    fn node(&mut self, mut items: Vec<u32>, region: Bounds, depth: usize) -> (u32, u32) {
        // A box that covers the whole region hides every box after it (unless a check
        // outside the key may still turn it down).
        let hides = |&i: &u32| {
            let (rule, b) = &self.boxes[i as usize];
            covers(b, &region) && !self.conditional.get(*rule as usize).copied().unwrap_or(false)
        };
        if let Some(cover) = items.iter().position(hides) {
            items.truncate(cover + 1);
        }
        if self.over {
            items.clear(); // see `leaf`
        }
        if items.len() <= LEAF_SIZE || depth >= MAX_DEPTH || self.entry_meta.len() > self.entry_budget {
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
        self.nodes.push(Node { slot: u32::from(self.position[slot]), point, child: [0; 2] });
        self.min_rule.push(self.boxes[items[0] as usize].0);
        drop(items);
        let (l, ld) = self.node(left, left_region, depth + 1);
        let (r, rd) = self.node(right, right_region, depth + 1);
        self.nodes[me].child = [l, r];
        (me as u32, 1 + ld.max(rd))
    }

    /// The cut that leaves the fewest boxes on its larger side (ties: fewest copies), or
    /// `None` when no cut puts fewer boxes on each side than the node holds. A cut may put
    /// at most half again as many boxes on its two sides together as the node holds (a
    /// space factor, as in HiCuts): one that crosses more copies more than it separates. On
    /// the ClassBench 10k sets this limit cut memory by up to 20x (acl2_10k: 23 to 1.2 MiB)
    /// at equal or better lookup speed.
    fn best_cut(&self, items: &[u32], region: &Bounds) -> Option<(usize, u32)> {
        let n = items.len();
        let mut best: Option<(usize, usize, usize, u32)> = None; // (larger side, sum, slot, point)
        let mut los = Vec::with_capacity(n);
        let mut his = Vec::with_capacity(n);
        for (slot, &[rlo, rhi]) in region.iter().enumerate() {
            if rlo == rhi || self.position[slot] == UNPROJECTED {
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
                if 2 * (left + right) > 3 * n {
                    continue; // copies more than it separates (see `best_cut`)
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::FULL;

    /// Reproducible boxes and keys: the crate's splitmix64 finaliser over a counter.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 += 1;
            (crate::limit::mix(self.0) >> 32) as u32
        }
    }

    fn brute_force(boxes: &[(u32, Bounds)], key: &Key) -> Option<u32> {
        boxes.iter().find(|(_, b)| b.iter().zip(key.0).all(|(r, v)| r[0] <= v && v <= r[1])).map(|b| b.0)
    }

    /// `count` boxes over every slot, `slots` of them constrained in each to small ranges of
    /// 0..8, so that more slots are constrained than are projected and keys fall in several.
    fn boxes_over_every_slot(rng: &mut Rng, count: u32, slots: u32) -> Vec<(u32, Bounds)> {
        (0..count)
            .map(|rule| {
                let mut b = FULL;
                for _ in 0..slots {
                    let slot = rng.next() as usize % DIMS;
                    let lo = rng.next() % 8;
                    b[slot] = [lo, lo + rng.next() % 3];
                }
                (rule, b)
            })
            .collect()
    }

    /// A forest is built within a bound on its bytes exactly when the unbounded one fits it,
    /// and the build stops as it passes the bound: what it held when it gave up is about the
    /// bound, not the whole forest.
    #[test]
    fn a_forest_past_its_bound_on_bytes_is_not_built() {
        let boxes = boxes_over_every_slot(&mut Rng(3), 1000, 4);
        let full = Forest::build(&boxes).stats().bytes;
        assert!(full > 100_000, "{full}: copies enough to stop early");
        assert_eq!(Forest::build_within(&boxes, &[], full).map(|f| f.stats().bytes), Some(full));
        assert!(Forest::build_within(&boxes, &[], full - 1).is_none());
        let tree = |max_bytes| {
            let mut b = Builder::new(&boxes, &[], projection(&boxes).1, max_bytes);
            b.node((0..boxes.len() as u32).collect(), FULL, 0);
            (b.over, b.bytes())
        };
        let (over, whole) = tree(usize::MAX);
        assert!(!over && whole > 100_000, "{whole}");
        let (over, bytes) = tree(whole / 4);
        assert!(over);
        // Past the bound by at most the constraints of one leaf's entries and the empty
        // leaves that close the nodes still open.
        assert!(bytes < whole / 4 + whole / 16, "{bytes} of {whole}");
    }

    #[test]
    fn constraints_outside_the_projection_are_checked() {
        let mut rng = Rng(7);
        for (count, slots) in [(20, 2), (300, 4), (1000, 5)] {
            let boxes = boxes_over_every_slot(&mut rng, count, slots);
            let forest = Forest::build(&boxes);
            assert!(!forest.constraints.is_empty(), "some constraints fall outside the projection");
            // The copies such boxes make are bounded (see ENTRIES_PER_BOX): past the budget,
            // each node still open on the build's path ends in at most two leaves.
            let bound = (ENTRIES_PER_BOX + 2 * MAX_DEPTH) * boxes.len();
            assert!(forest.stats().leaf_entries <= bound, "{:?}", forest.stats());
            let keys: Vec<Key> = (0..700).map(|_| Key(std::array::from_fn(|_| rng.next() % 8))).collect();
            let refs: Vec<&Key> = keys.iter().collect();
            let mut batched = vec![None; keys.len()];
            forest.first_match_batch(&refs, &mut batched);
            let mut matched = 0;
            for (key, batched) in keys.iter().zip(batched) {
                let expect = brute_force(&boxes, key);
                matched += usize::from(expect.is_some());
                assert_eq!(forest.first_match(key), expect, "{key:?}");
                assert_eq!(batched, expect, "batched, {key:?}");
            }
            assert!(matched > 100 && matched < keys.len(), "{matched} of {} keys match: a weak test", keys.len());
        }
    }

    /// A forest of a few boxes is looked up in its list: every lookup answers as the brute
    /// force over the boxes does (rules of two boxes and conditional ones among them), and
    /// as the trees, built all the same, do where a table's lookups start: from rule 0, and
    /// past a first match whose check failed.
    #[test]
    fn a_forest_of_few_boxes_answers_from_its_list() {
        let holds = |b: &Bounds, key: &Key| b.iter().zip(key.0).all(|(g, v)| g[0] <= v && v <= g[1]);
        let mut rng = Rng(17);
        let mut matched = 0;
        for count in 1..=LISTED_BOXES as u32 {
            for slots in [1, 2, 3] {
                // Rules of one box and of two (box `i` is rule `i / 2`).
                let boxes: Vec<(u32, Bounds)> =
                    boxes_over_every_slot(&mut rng, count, slots).into_iter().map(|(r, b)| (r / 2, b)).collect();
                let conditional: Vec<bool> = (0..count).map(|_| rng.next().is_multiple_of(2)).collect();
                let forest = Forest::build_conditional(&boxes, &conditional);
                assert!(forest.list.is_some(), "{count} boxes are listed");
                let mut trees = forest.clone();
                trees.list = None;
                let keys: Vec<Key> = (0..300).map(|_| Key(std::array::from_fn(|_| rng.next() % 8))).collect();
                let refs: Vec<&Key> = keys.iter().collect();
                let (mut listed, mut walked) = (vec![None; keys.len()], vec![None; keys.len()]);
                forest.first_match_batch(&refs, &mut listed);
                trees.first_match_batch(&refs, &mut walked);
                for ((key, listed), walked) in keys.iter().zip(listed).zip(walked) {
                    let first = brute_force(&boxes, key);
                    matched += usize::from(first.is_some());
                    assert_eq!([forest.first_match(key), listed, walked], [first; 3], "{key:?}");
                    let pick = rng.next() % (count / 2 + 1); // the conditional rule whose check holds
                    let take = |r: u32| !conditional[r as usize] || r == pick;
                    let offered = |forest: &Forest, floor: u32| {
                        let mut seen = Vec::new();
                        let took = forest.first_match_where(key, floor, |r| {
                            seen.push(r);
                            take(r)
                        });
                        (took, seen)
                    };
                    for floor in 0..=count / 2 + 1 {
                        let from = boxes.iter().find(|(r, b)| *r >= floor && holds(b, key)).map(|b| b.0);
                        assert_eq!(forest.first_match_from(key, floor), from, "{key:?}, floor {floor}");
                        let mut expect = Vec::new();
                        for (r, b) in &boxes {
                            if *r >= floor && expect.last() != Some(r) && holds(b, key) {
                                expect.push(*r);
                                if take(*r) {
                                    break;
                                }
                            }
                        }
                        let took = expect.last().copied().filter(|&r| take(r));
                        assert_eq!(offered(&forest, floor), (took, expect), "{key:?}, floor {floor}");
                    }
                    let refused = first.filter(|&r| !take(r));
                    for floor in [Some(0), refused.map(|r| r + 1)].into_iter().flatten() {
                        assert_eq!(offered(&forest, floor), offered(&trees, floor), "{key:?}, floor {floor}");
                    }
                }
            }
        }
        assert!(matched > 500, "{matched} keys matched a box: a weak test");
    }

    /// Boxes conditional (a byte test each, as a signature list behind one header test is)
    /// and not, in several trees, two a rule: `first_match_where` offers the rules whose
    /// boxes hold the key in rule order, each once, from the floor on, up to the first
    /// unconditional one (which
    /// the lookup takes: its check always holds, and it may hide the boxes after it). The
    /// brute force over the boxes is the oracle.
    #[test]
    fn candidates_are_offered_once_each_in_rule_order() {
        let mut rng = Rng(11);
        for (count, slots) in [(50, 1), (400, 2), (2000, 3)] {
            // Two boxes a rule, as `udp.port in {53, 123} and udp.payload contains "x"` is.
            let boxes: Vec<(u32, Bounds)> =
                boxes_over_every_slot(&mut rng, count, slots).into_iter().map(|(r, b)| (r / 2, b)).collect();
            let conditional: Vec<bool> = (0..count).map(|r| r % 3 != 0).collect();
            let forest = Forest::build_conditional(&boxes, &conditional);
            assert!(forest.roots.len() > 1, "the conditional boxes are a tree of their own");
            for _ in 0..200 {
                let key = Key(std::array::from_fn(|_| rng.next() % 8));
                let floor = rng.next() % (count / 8);
                let pick = rng.next() % (count / 2); // the conditional rule whose check holds
                let mut expect = Vec::new();
                for (r, b) in &boxes {
                    if *r >= floor
                        && expect.last() != Some(r)
                        && b.iter().zip(key.0).all(|(g, v)| g[0] <= v && v <= g[1])
                    {
                        expect.push(*r);
                        if !conditional[*r as usize] || *r == pick {
                            break;
                        }
                    }
                }
                let mut offered = Vec::new();
                let took = forest.first_match_where(&key, floor, |r| {
                    offered.push(r);
                    !conditional[r as usize] || r == pick
                });
                let expect_took = expect.last().copied().filter(|&r| !conditional[r as usize] || r == pick);
                assert_eq!((took, offered), (expect_took, expect), "{key:?}, floor {floor}");
            }
        }
    }
}
