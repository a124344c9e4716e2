//! The exact hindsight optimum of a day: a transportation problem solved as a min-cost flow
//! over a petgraph residual graph. Every lead sends one unit to the sink, through a guide
//! (cost −w_ij, the guide's arc to the sink holding c_j) or straight (cost 0: unplaced).
//!
//! Leads enter one at a time (successive shortest paths from each new lead, as in the Hungarian
//! method): a Dijkstra search from the lead under Johnson potentials finds the cheapest way to
//! make room for it, possibly moving earlier leads, and stops once the sink is settled. Only the
//! nodes it settled change potential, so a lead costs what its neighbourhood costs, not the day.
//! Values are scaled to integer micro-units for the search (exact, no float noise); the reported
//! value sums the original values of the chosen edges. Large days use the dual bound
//! ([`crate::dual`]).

use crate::instance::Instance;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Micro-units per unit of value.
const SCALE: f64 = 1e6;

#[derive(Debug, Clone, Copy)]
struct Arc {
    cap: i32,
    cost: i64,
}

/// The optimum: its value and one assignment that reaches it.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimum {
    pub value: f64,
    pub assignment: Vec<Option<u32>>,
    /// Nodes settled by all searches together: the work done.
    pub settled: u64,
}

type Graph = DiGraph<(), Arc, u32>;

/// Adds an arc and its residual twin: forward arcs at even indexes, twins at the next odd one.
fn add(g: &mut Graph, a: NodeIndex<u32>, b: NodeIndex<u32>, cap: i32, cost: i64) {
    g.add_edge(a, b, Arc { cap, cost });
    g.add_edge(
        b,
        a,
        Arc {
            cap: 0,
            cost: -cost,
        },
    );
}

/// Solves `inst` exactly.
pub fn solve(inst: &Instance) -> Optimum {
    let (n, m) = (inst.leads(), inst.guides());
    let lead = |i: usize| NodeIndex::<u32>::new(i);
    let guide = |j: usize| NodeIndex::<u32>::new(n + j);
    let sink = NodeIndex::<u32>::new(n + m);
    let mut g: Graph = DiGraph::with_capacity(n + m + 1, 2 * (2 * n + m + inst.edge_count()));
    for _ in 0..n + m + 1 {
        g.add_node(());
    }
    for (j, &c) in inst.capacities().iter().enumerate() {
        add(&mut g, guide(j), sink, c.min(i32::MAX as u32) as i32, 0);
    }
    let mut first_edge = Vec::with_capacity(n + 1);
    for i in 0..n {
        first_edge.push(g.edge_count());
        let (gs, vs) = inst.edges(i);
        for (&j, &v) in gs.iter().zip(vs) {
            let w = (f64::from(v) * SCALE).round() as i64;
            if w > 0 && inst.capacities()[j as usize] > 0 {
                add(&mut g, lead(i), guide(j as usize), 1, -w);
            }
        }
        first_edge.push(g.edge_count());
        add(&mut g, lead(i), sink, 1, 0);
    }

    let nodes = g.node_count();
    let mut pot = vec![0i64; nodes];
    let mut dist = vec![i64::MAX; nodes];
    let mut prev: Vec<Option<EdgeIndex<u32>>> = vec![None; nodes];
    let mut done = vec![false; nodes];
    let mut touched: Vec<usize> = Vec::new();
    let mut heap = BinaryHeap::new();
    let mut settled = 0u64;
    let mut held: Vec<Vec<u32>> = vec![Vec::new(); m];
    // Any order of leads gives the optimum; the most valuable first rarely need displacing
    // later, which keeps augmenting paths short.
    let mut order: Vec<(f32, usize)> = (0..n)
        .map(|i| (inst.edges(i).1.iter().copied().fold(0.0, f32::max), i))
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in order {
        let root = lead(i).index();
        // The new lead's potential makes its arcs' reduced costs >= 0.
        pot[root] = g
            .edges(lead(i))
            .map(|e| pot[e.target().index()] - e.weight().cost)
            .max()
            .unwrap_or(pot[sink.index()]);
        for &v in &touched {
            dist[v] = i64::MAX;
            prev[v] = None;
            done[v] = false;
        }
        touched.clear();
        dist[root] = 0;
        touched.push(root);
        heap.clear();
        // Among equal distances the sink comes first (key 0): a search ends as soon as it can.
        let key = |v: usize| if v == sink.index() { 0 } else { v + 1 };
        let node = |k: usize| if k == 0 { sink.index() } else { k - 1 };
        heap.push(Reverse((0i64, key(root))));
        while let Some(Reverse((d, k))) = heap.pop() {
            let u = node(k);
            if done[u] {
                continue;
            }
            done[u] = true;
            settled += 1;
            if u == sink.index() {
                break;
            }
            // A guide's residual arcs are its arc to the sink and the twins of the arcs that
            // carry its leads: kept apart, so a guide is not walked through every lead that
            // could have had it.
            let mut relax = |k: usize| {
                let e = EdgeIndex::<u32>::new(k);
                let a = g[e];
                let v = g.edge_endpoints(e).map_or(u, |(_, b)| b.index());
                if a.cap <= 0 || done[v] {
                    return;
                }
                let rc = a.cost + pot[u] - pot[v];
                debug_assert!(rc >= 0, "negative reduced cost {rc}");
                let nd = d + rc;
                if nd < dist[v] {
                    if dist[v] == i64::MAX {
                        touched.push(v);
                    }
                    dist[v] = nd;
                    prev[v] = Some(e);
                    heap.push(Reverse((nd, key(v))));
                }
            };
            if u < n {
                for e in g.edges(NodeIndex::new(u)) {
                    relax(e.id().index());
                }
            } else {
                let j = u - n;
                relax(2 * j);
                for &k in &held[j] {
                    relax(k as usize);
                }
            }
        }
        // The lead's own arc to the sink always reaches it.
        let dt = dist[sink.index()];
        // Settled nodes closer than the sink move down by the difference; nothing else moves.
        for &v in &touched {
            if done[v] && dist[v] < dt {
                pot[v] -= dt - dist[v];
            }
        }
        let mut v = sink.index();
        while let Some(e) = prev[v] {
            g[e].cap -= 1;
            let twin = EdgeIndex::new(e.index() ^ 1);
            g[twin].cap += 1;
            let (a, b) = g
                .edge_endpoints(e)
                .map_or((root, root), |(a, b)| (a.index(), b.index()));
            if e.index() >= 2 * m && a < n && (n..n + m).contains(&b) {
                // A lead now held by guide b: the twin arc leads back to it.
                held[b - n].push(twin.index() as u32);
            } else if e.index() >= 2 * m && (n..n + m).contains(&a) && b < n {
                // Guide a gives the lead up.
                let list = &mut held[a - n];
                if let Some(p) = list.iter().position(|&k| k as usize == e.index()) {
                    list.swap_remove(p);
                }
            }
            v = a;
        }
    }

    // Read the assignment off the lead → guide arcs that carry flow.
    let mut assignment = vec![None; n];
    let mut value = 0.0;
    for (i, slot) in assignment.iter_mut().enumerate() {
        for k in (first_edge[2 * i]..first_edge[2 * i + 1]).step_by(2) {
            let e = EdgeIndex::new(k);
            if g[e].cap == 0 {
                let j = g.edge_endpoints(e).map_or(0, |(_, b)| b.index() - n) as u32;
                *slot = Some(j);
                value += f64::from(inst.value(i, j));
                break;
            }
        }
    }
    Optimum {
        value,
        assignment,
        settled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pathfinding::prelude::{Matrix, kuhn_munkres};
    use proptest::prelude::*;

    /// The optimum by the Hungarian method: each guide becomes c_j columns and each lead gets
    /// a column of its own worth 0 (staying unplaced).
    fn hungarian(inst: &Instance) -> i64 {
        let n = inst.leads();
        let mut cols: Vec<Option<u32>> = Vec::new();
        for (j, &c) in inst.capacities().iter().enumerate() {
            cols.extend(std::iter::repeat_n(Some(j as u32), c as usize));
        }
        cols.extend(std::iter::repeat_n(None, n));
        let mut m = Matrix::new(n, cols.len(), 0i64);
        for i in 0..n {
            for (k, col) in cols.iter().enumerate() {
                if let Some(j) = col {
                    m[(i, k)] = inst.value(i, *j) as i64;
                }
            }
        }
        kuhn_munkres(&m).0
    }

    fn instance(caps: &[u32], values: &[Vec<Option<u8>>]) -> Instance {
        let mut inst = Instance::new(caps.to_vec());
        for row in values {
            inst.push_lead(
                row.iter()
                    .enumerate()
                    .filter_map(|(j, v)| v.map(|v| (j as u32, f32::from(v)))),
            )
            .unwrap();
        }
        inst
    }

    #[test]
    fn a_textbook_instance() {
        // Greedy takes (0, A) = 10 and leaves lead 1 with 1; the optimum is 9 + 8.
        let inst = instance(&[1, 1], &[vec![Some(10), Some(9)], vec![Some(8), Some(1)]]);
        let opt = solve(&inst);
        assert_eq!(opt.value, 17.0);
        assert_eq!(opt.assignment, vec![Some(1), Some(0)]);
        assert_eq!(inst.greedy().0, 11.0);
    }

    #[test]
    fn capacities_bind_and_leads_may_stay_unplaced() {
        let inst = instance(
            &[2, 0],
            &[
                vec![Some(3), Some(9)],
                vec![Some(5), None],
                vec![Some(4), None],
            ],
        );
        let opt = solve(&inst);
        assert_eq!(opt.value, 9.0);
        assert_eq!(inst.value_of(&opt.assignment).unwrap(), 9.0);
        assert_eq!(opt.assignment.iter().flatten().count(), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn equals_the_hungarian_optimum(
            caps in prop::collection::vec(0u32..4, 1..5),
            rows in prop::collection::vec(prop::collection::vec(prop::option::weighted(0.7, 0u8..60), 5), 0..9),
        ) {
            let m = caps.len();
            let rows: Vec<Vec<Option<u8>>> = rows.into_iter().map(|r| r[..m].to_vec()).collect();
            let inst = instance(&caps, &rows);
            let opt = solve(&inst);
            prop_assert_eq!(opt.value as i64, hungarian(&inst));
            prop_assert_eq!(inst.value_of(&opt.assignment).unwrap(), opt.value);
        }
    }
}
