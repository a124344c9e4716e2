use super::*;
use crate::storage::{
    Desks, NoticeId, NoticesOf, OfferNotice, by_time, in_store_queue, on_guide_desk,
};

/// Desks and queues are found by reading every decision (this backend serves tests and the
/// simulator, which keeps few days); notices are a list in memory.
impl Desks for MemoryStore {
    fn guide_leads(&self, guide_id: &str, day: Day) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut out: Vec<Arc<Decision>> = (self.inner.lock().decisions.values())
            .filter(|d| on_guide_desk(d, guide_id, day))
            .cloned()
            .collect();
        by_time(&mut out);
        Ok(out)
    }

    fn store_queue(
        &self,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut out: Vec<Arc<Decision>> = (self.inner.lock().decisions.values())
            .filter(|d| in_store_queue(d, store_id))
            .cloned()
            .collect();
        by_time(&mut out);
        out.truncate(limit);
        Ok(out)
    }

    fn notices(
        &self,
        of: NoticesOf<'_>,
        after: NoticeId,
        limit: usize,
    ) -> Result<Vec<OfferNotice>, StorageError> {
        let inner = self.inner.lock();
        let start = inner.notices.partition_point(|n| n.id <= after);
        Ok(inner
            .notices
            .range(start..)
            .filter(|n| n.is_for(of))
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_notice(&self) -> Result<NoticeId, StorageError> {
        Ok(NoticeId(0, self.inner.lock().last_notice))
    }

    fn prune_notices(&self, before_ms: i64) -> Result<u64, StorageError> {
        let mut inner = self.inner.lock();
        let before = inner.notices.len();
        inner.notices.retain(|n| n.at_ms >= before_ms);
        Ok((before - inner.notices.len()) as u64)
    }
}
