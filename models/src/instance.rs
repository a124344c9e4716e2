//! One day as an optimisation instance (DESIGN §8): leads i, guides j with capacities c_j, and
//! the value w_ij ≥ 0 of giving lead i to guide j on the edges where that is possible. Stored
//! compactly (one edge is 8 bytes), since a large day has tens of millions of edges.

/// A day's leads, guides and edges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    capacities: Vec<u32>,
    /// Lead i's edges are `starts[i]..starts[i + 1]`.
    starts: Vec<usize>,
    guides: Vec<u32>,
    values: Vec<f32>,
}

/// An instance that breaks a rule: the message names what and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InstanceError(pub String);

impl Instance {
    /// An instance with these guides and no leads yet.
    pub fn new(capacities: Vec<u32>) -> Self {
        Self {
            capacities,
            starts: vec![0],
            guides: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Adds a lead with its edges `(guide, value)`. A guide named twice keeps its best value;
    /// edges worth nothing are dropped (an unplaced lead is worth 0 too).
    pub fn push_lead(
        &mut self,
        edges: impl IntoIterator<Item = (u32, f32)>,
    ) -> Result<usize, InstanceError> {
        let lead = self.starts.len() - 1;
        let from = self.guides.len();
        for (g, v) in edges {
            if g as usize >= self.capacities.len() {
                self.truncate(from);
                return Err(InstanceError(format!(
                    "lead {lead}: guide {g} is not one of the {} guides",
                    self.capacities.len()
                )));
            }
            if !v.is_finite() || v < 0.0 {
                self.truncate(from);
                return Err(InstanceError(format!(
                    "lead {lead}: value for guide {g} must be finite and >= 0, got {v}"
                )));
            }
            if v > 0.0 {
                self.guides.push(g);
                self.values.push(v);
            }
        }
        // Best value per guide, guides in order.
        let mut pairs: Vec<(u32, f32)> = self.guides[from..]
            .iter()
            .copied()
            .zip(self.values[from..].iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        pairs.dedup_by_key(|p| p.0);
        self.truncate(from);
        for (g, v) in pairs {
            self.guides.push(g);
            self.values.push(v);
        }
        self.starts.push(self.guides.len());
        Ok(lead)
    }

    fn truncate(&mut self, to: usize) {
        self.guides.truncate(to);
        self.values.truncate(to);
    }

    pub fn leads(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn guides(&self) -> usize {
        self.capacities.len()
    }

    pub fn capacities(&self) -> &[u32] {
        &self.capacities
    }

    pub fn edge_count(&self) -> usize {
        self.guides.len()
    }

    /// Lead i's edges: guides (ascending) and their values.
    pub fn edges(&self, lead: usize) -> (&[u32], &[f32]) {
        let r = self.starts[lead]..self.starts[lead + 1];
        (&self.guides[r.clone()], &self.values[r])
    }

    /// The value of lead i with guide j (0 without an edge).
    pub fn value(&self, lead: usize, guide: u32) -> f32 {
        let (gs, vs) = self.edges(lead);
        gs.binary_search(&guide).map_or(0.0, |k| vs[k])
    }

    /// The total value of an assignment, after checking it keeps every capacity.
    pub fn value_of(&self, assignment: &[Option<u32>]) -> Result<f64, InstanceError> {
        if assignment.len() != self.leads() {
            return Err(InstanceError(format!(
                "assignment has {} leads, the instance {}",
                assignment.len(),
                self.leads()
            )));
        }
        let mut used = vec![0u32; self.guides()];
        let mut total = 0.0;
        for (i, a) in assignment.iter().enumerate() {
            if let Some(g) = *a {
                let slot = used
                    .get_mut(g as usize)
                    .ok_or_else(|| InstanceError(format!("lead {i}: guide {g} does not exist")))?;
                *slot += 1;
                if *slot > self.capacities[g as usize] {
                    return Err(InstanceError(format!(
                        "guide {g} is given {} leads, capacity {}",
                        slot, self.capacities[g as usize]
                    )));
                }
                total += f64::from(self.value(i, g));
            }
        }
        Ok(total)
    }

    /// A synthetic day: `leads` leads with `per_lead` edges each to random guides, values
    /// uniform in [0, 100), capacities uniform in 1..=`max_capacity`. Seeded: the same
    /// arguments give the same instance. For tests and benches of the solvers.
    pub fn random(
        leads: usize,
        guides: usize,
        per_lead: usize,
        max_capacity: u32,
        seed: u64,
    ) -> Self {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let caps = (0..guides)
            .map(|_| 1 + rng.below(u64::from(max_capacity.max(1))) as u32)
            .collect();
        let mut inst = Instance::new(caps);
        for _ in 0..leads {
            let edges: Vec<(u32, f32)> = (0..per_lead)
                .map(|_| {
                    (
                        rng.below(guides as u64) as u32,
                        (rng.next_f64() * 100.0) as f32,
                    )
                })
                .collect();
            // Guides are in range and values finite: nothing to refuse.
            let _ = inst.push_lead(edges);
        }
        inst
    }

    /// Greedy: edges by value, highest first, each taken while its lead is free and its guide
    /// has room. At least half the optimum; a quick lower bound.
    pub fn greedy(&self) -> (f64, Vec<Option<u32>>) {
        let mut order: Vec<usize> = (0..self.edge_count()).collect();
        order.sort_unstable_by(|&a, &b| self.values[b].total_cmp(&self.values[a]).then(a.cmp(&b)));
        let mut lead_of = vec![0u32; self.edge_count()];
        for i in 0..self.leads() {
            lead_of[self.starts[i]..self.starts[i + 1]].fill(i as u32);
        }
        let mut left = self.capacities.clone();
        let mut assignment = vec![None; self.leads()];
        let mut total = 0.0;
        for e in order {
            let (i, g) = (lead_of[e] as usize, self.guides[e]);
            if assignment[i].is_none() && left[g as usize] > 0 {
                left[g as usize] -= 1;
                assignment[i] = Some(g);
                total += f64::from(self.values[e]);
            }
        }
        (total, assignment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_keep_the_best_value_per_guide_and_drop_zeros() {
        let mut inst = Instance::new(vec![1, 1, 1]);
        inst.push_lead([(2, 1.0), (0, 3.0), (2, 4.0), (1, 0.0)])
            .unwrap();
        assert_eq!(inst.edges(0), (&[0u32, 2][..], &[3.0f32, 4.0][..]));
        assert_eq!(inst.value(0, 1), 0.0);
        let e = inst.push_lead([(0, 1.0), (9, 1.0)]).unwrap_err();
        assert!(e.0.contains("guide 9"), "{e}");
        let e = inst.push_lead([(0, f32::NAN)]).unwrap_err();
        assert!(e.0.contains("finite"), "{e}");
        // A refused lead leaves nothing behind.
        assert_eq!((inst.leads(), inst.edge_count()), (1, 2));
    }

    #[test]
    fn value_of_checks_capacity() {
        let mut inst = Instance::new(vec![1, 2]);
        inst.push_lead([(0, 5.0), (1, 1.0)]).unwrap();
        inst.push_lead([(0, 4.0)]).unwrap();
        assert_eq!(inst.value_of(&[Some(0), None]).unwrap(), 5.0);
        assert!(inst.value_of(&[Some(0), Some(0)]).is_err());
        assert_eq!(inst.greedy().0, 5.0);
    }
}
