use super::*;
use crate::storage::{
    Desks, NoticeId, NoticesOf, OfferNotice, by_time, in_store_queue, on_guide_desk,
};

impl SledStore {
    /// The number of the last notice on disk (0 for none).
    pub(super) fn last_notice_on_disk(&self) -> Result<u64, StorageError> {
        let last = self.routes.scan_prefix(b"n/").next_back().transpose();
        Ok(match last.map_err(backend)? {
            Some((k, _)) => k
                .get(2..10)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StorageError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    why: "a notice key is truncated".into(),
                })?,
            None => 0,
        })
    }

    /// Numbers and writes `notices` under the notice lock (after their decision is queued).
    pub(super) fn write_notices(&self, notices: &[OfferNotice]) -> Result<(), StorageError> {
        if notices.is_empty() {
            return Ok(());
        }
        let mut last = self.notices.lock();
        for n in notices {
            self.routes
                .insert(notice_key(*last + 1), n.to_body().as_bytes())
                .map_err(backend)?;
            *last += 1;
        }
        drop(last);
        self.mark_dirty();
        Ok(())
    }

    /// Decisions queued for the writer that `keep` accepts (not on disk yet).
    fn pending_where(&self, keep: impl Fn(&Decision) -> bool) -> Vec<Arc<Decision>> {
        (self.pending.lock().values())
            .filter(|d| keep(d))
            .cloned()
            .collect()
    }

    /// The decisions `leads` name that `keep` accepts as stored now, with the pending ones it
    /// accepts, each once.
    fn current(
        &self,
        leads: impl IntoIterator<Item = String>,
        keep: impl Fn(&Decision) -> bool,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for d in self.pending_where(&keep) {
            seen.insert(d.lead.lead_id.clone());
            out.push(d);
        }
        for lead in leads {
            if seen.contains(&lead) {
                continue;
            }
            if let Some(d) = self.decision(&lead)?
                && keep(&d)
            {
                seen.insert(lead);
                out.push(d);
            }
        }
        by_time(&mut out);
        Ok(out)
    }
}

/// A guide's leads of a day are found in the day's capacity records (every decision that names
/// a guide took that guide's capacity when it was routed, re-offered or claimed), so routes
/// write no index of their own; queues have their `q/` keys. What is listed is what the stored
/// decision says now.
impl Desks for SledStore {
    fn guide_leads(&self, guide_id: &str, day: Day) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut leads = Vec::new();
        for kv in self.routes.scan_prefix(count_prefix(day)) {
            let (k, v) = kv.map_err(backend)?;
            let mut rest = &v[..];
            while !rest.is_empty() {
                let (guide, lead, r) = take_id(rest)
                    .and_then(|(g, r)| take_id(r).map(|(l, r)| (g, l, r)))
                    .ok_or_else(|| StorageError::Corrupt {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        why: "capacity record is truncated".into(),
                    })?;
                if guide == guide_id.as_bytes() {
                    leads.push(String::from_utf8_lossy(lead).into_owned());
                }
                rest = r;
            }
        }
        let mut legacy = index_prefix(day);
        push_id(&mut legacy, guide_id);
        for kv in self.routes.scan_prefix(&legacy) {
            let (k, _) = kv.map_err(backend)?;
            leads.push(String::from_utf8_lossy(&k[legacy.len()..]).into_owned());
        }
        self.current(leads, |d| on_guide_desk(d, guide_id, day))
    }

    fn store_queue(
        &self,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let prefix = queue_prefix(store_id);
        let mut leads = Vec::new();
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(backend)?;
            if let Some(lead) = k.get(prefix.len() + 8..) {
                leads.push(String::from_utf8_lossy(lead).into_owned());
            }
            // Stale keys (a claimed lead whose key is not removed yet) are skipped below, so
            // read a little past the limit.
            if leads.len() >= limit.saturating_mul(2).max(limit + 64) {
                break;
            }
        }
        let mut out = self.current(leads, |d| in_store_queue(d, store_id))?;
        out.truncate(limit);
        Ok(out)
    }

    fn notices(
        &self,
        of: NoticesOf<'_>,
        after: NoticeId,
        limit: usize,
    ) -> Result<Vec<OfferNotice>, StorageError> {
        let start = if after.0 > 0 {
            // Not a number this backend gave: after every notice numbered so far.
            u64::MAX
        } else {
            after.1.saturating_add(1)
        };
        let mut out = Vec::new();
        for kv in self.routes.range(notice_key(start)..notice_key(u64::MAX)) {
            let (k, v) = kv.map_err(backend)?;
            let seq = k
                .get(2..10)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            let id = NoticeId(0, seq);
            let n = OfferNotice::from_body(id, &String::from_utf8_lossy(&v))?;
            if n.is_for(of) {
                out.push(n);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn last_notice(&self) -> Result<NoticeId, StorageError> {
        Ok(NoticeId(0, *self.notices.lock()))
    }

    fn prune_notices(&self, before_ms: i64) -> Result<u64, StorageError> {
        let mut gone = 0;
        for kv in self.routes.scan_prefix(b"n/") {
            let (k, v) = kv.map_err(backend)?;
            let old = OfferNotice::from_body(NoticeId::default(), &String::from_utf8_lossy(&v))
                .is_ok_and(|n| n.at_ms < before_ms);
            if old {
                self.routes.remove(&k).map_err(backend)?;
                gone += 1;
            }
        }
        if gone > 0 {
            self.mark_dirty();
        }
        Ok(gone)
    }
}
