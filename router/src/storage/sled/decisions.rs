use super::*;
use crate::storage::{Committed, RouteCommit, lease_due, open_offer};

impl Decisions for SledStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        let key = decision_key(lead_id.as_bytes());
        if let Some(d) = self.pending.lock().get(&key) {
            return Ok(Some(d.clone()));
        }
        match self.routes.get(&key).map_err(backend)? {
            None => Ok(None),
            Some(bytes) => codec::decode_decision(&bytes)
                .map(|d| Some(Arc::new(d)))
                .map_err(|why| StorageError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    why,
                }),
        }
    }

    /// Under the lead's lock, then the guide's count shard, then the member's lock (always in
    /// that order): sled is opened by one process, so these locks make the checks and the
    /// writes one step.
    fn commit_route(&self, c: &RouteCommit<'_>) -> Result<Committed, StorageError> {
        self.check_failed()?;
        c.check()?;
        let d = c.decision;
        let _lead = self.leads.lock(&d.lead.lead_id);
        let stored = self.decision(&d.lead.lead_id)?;
        match (c.replaces, &stored) {
            (None, Some(s)) => return Ok(Committed::Replayed(s.clone())),
            (Some(v), Some(s)) if s.version != v => return Ok(Committed::Moved(Some(s.clone()))),
            (Some(_), None) => return Ok(Committed::Moved(None)),
            _ => {}
        }
        for day in c
            .take
            .map(|t| t.day)
            .into_iter()
            .chain(c.release.map(|r| r.1))
        {
            self.counts.seed(day.0, || self.counts_on_disk(day))?;
        }
        let mut shard = c.take.map(|t| self.counts.shard(t.guide_id).lock());
        let used = match (c.take, shard.as_ref()) {
            (Some(t), Some(s)) => {
                let n = s.get(&(t.day.0, t.guide_id.into())).copied().unwrap_or(0);
                if n >= t.capacity {
                    return Ok(Committed::Full { used: n });
                }
                Some(n + 1)
            }
            _ => None,
        };
        let member = c
            .head
            .map(|at| at.member_id)
            .or_else(|| c.events.first().map(|a| a.event.member_id.as_str()));
        let _member = member.map(|m| self.members.lock(m));
        if let Some(at) = c.head
            && c.events.is_empty()
            && !at.is(self.trail_head(at.member_id)?.map(|h| h.0))
        {
            // With events, their chain is the check.
            return Ok(Committed::HeadMoved(None));
        }
        if !c.events.is_empty() {
            match self.refuse_append(c.events)? {
                None => {}
                Some(Appended::HeadMoved) => return Ok(Committed::HeadMoved(None)),
                Some(_) => {
                    return Err(StorageError::Backend(
                        "a route's events carry no id key".into(),
                    ));
                }
            }
            for a in c.events {
                self.write_event(&a.event, &a.line, a.key)?;
            }
            self.mark_dirty();
        }
        let stale = (stored.as_deref())
            .into_iter()
            .flat_map(|s| offer_key(s).into_iter().chain(queue_key(s)))
            .collect();
        self.put(d, c.take.is_some(), stale)?;
        self.write_notices(c.notices)?;
        if let (Some(t), Some(s), Some(n)) = (c.take, shard.as_mut(), used) {
            s.insert((t.day.0, t.guide_id.into()), n);
        }
        drop(shard);
        if let Some((g, day)) = c.release {
            self.counts.release(g, day.0);
        }
        let mut offers = self.offers.lock();
        if let Some(prev) = stored.as_deref().and_then(open_offer) {
            offers.remove(&prev);
            self.leases.lock().remove(&prev.1);
        }
        if let Some(open) = open_offer(d) {
            offers.insert(open);
        }
        Ok(Committed::Stored { used })
    }

    fn guide_count(&self, guide_id: &str, day: Day) -> Result<u32, StorageError> {
        self.counts.seed(day.0, || self.counts_on_disk(day))?;
        Ok(self.counts.get(guide_id, day.0))
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError> {
        self.counts.seed(day.0, || self.counts_on_disk(day))?;
        Ok(self.counts.day(day.0))
    }

    fn claim_due_offers(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let due = lease_due(
            &self.offers.lock(),
            &mut self.leases.lock(),
            now_ms,
            lease_until_ms,
            limit,
        );
        let mut out = Vec::with_capacity(due.len());
        for lead in due {
            if let Some(d) = self.decision(&lead)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn open_offer_count(&self) -> Result<usize, StorageError> {
        Ok(self.offers.lock().len())
    }

    fn decision_count(&self) -> Result<u64, StorageError> {
        self.flush()?;
        Ok(self.routes.scan_prefix(b"d/").count() as u64)
    }

    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StorageError> {
        self.flush()?;
        for kv in self.routes.scan_prefix(b"d/") {
            let (k, v) = kv.map_err(backend)?;
            let d = codec::decode_decision(&v).map_err(|why| StorageError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why,
            })?;
            if !f(Arc::new(d)) {
                break;
            }
        }
        Ok(())
    }
}

impl SledStore {
    /// Decisions whose offer is open, from the `o/` keys (read at open).
    pub(super) fn open_offers_on_disk(&self) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut out = Vec::new();
        for kv in self.routes.scan_prefix(b"o/") {
            let (k, _) = kv.map_err(backend)?;
            let Some(lead) = k.get(10..) else { continue };
            let Some(d) = self.decision(&String::from_utf8_lossy(lead))? else {
                continue;
            };
            // Trusted only when the decision still holds that open offer.
            if offer_key(&d).as_deref() == Some(&k[..]) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Every guide's count on `day` as the stored decisions have it: read once per day and
    /// process, before the day's first take (see [`counts::Counts`]).
    pub(super) fn counts_on_disk(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError> {
        // Every (guide, lead) that took capacity on `day`: from capacity records, and from the
        // per-decision index keys that stores before capacity records wrote.
        let mut claims: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        let prefix = count_prefix(day);
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(backend)?;
            let corrupt = || StorageError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why: "capacity record is truncated".into(),
            };
            let mut rest = &v[..];
            while !rest.is_empty() {
                let (guide, r) = take_id(rest).ok_or_else(corrupt)?;
                let (lead, r) = take_id(r).ok_or_else(corrupt)?;
                claims
                    .entry(lead.to_vec())
                    .or_default()
                    .push(guide.to_vec());
                rest = r;
            }
        }
        let prefix = index_prefix(day);
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(backend)?;
            let (guide, lead) = take_id(&k[prefix.len()..])
                .map(|(g, lead)| (g.to_vec(), lead.to_vec()))
                .ok_or_else(|| StorageError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    why: "index key is truncated".into(),
                })?;
            claims.entry(lead).or_default().push(guide);
        }
        // A lead counts once, for the guide its stored decision names on that day: an entry
        // whose decision was lost in a crash, or that a later version (an offer that moved on)
        // replaced, counts for nothing.
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (lead, guides) in claims {
            let lead = String::from_utf8_lossy(&lead);
            let Some(d) = self.decision(&lead)? else {
                continue;
            };
            if d.day != day {
                continue;
            }
            if let Some(g) = d.guide_id()
                && guides.iter().any(|c| c.as_slice() == g.as_bytes())
            {
                *counts.entry(g.to_string()).or_default() += 1;
            }
        }
        let mut out: Vec<(String, u32)> = counts.into_iter().collect();
        out.sort();
        Ok(out)
    }
}
