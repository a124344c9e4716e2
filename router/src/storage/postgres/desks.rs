use super::{PostgresStore, corrupt, execute, query, query_opt};
use crate::domain::{Day, Decision};
use crate::storage::{
    Desks, NoticeId, NoticesOf, OfferNotice, StorageError, by_time, codec, in_store_queue,
    on_guide_desk,
};
use std::sync::Arc;

/// Behind the oldest transaction still running (migration 7).
const VISIBLE: &str = "xid < pg_snapshot_xmin(pg_current_snapshot())";

fn decode_all(
    rows: &[tokio_postgres::Row],
    keep: impl Fn(&Decision) -> bool,
) -> Result<Vec<Arc<Decision>>, StorageError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let lead: &str = r.get(0);
        let d = codec::decode_decision(r.get(1))
            .map_err(|why| corrupt(format!("decision {lead}"), why))?;
        // The columns find candidates; the record says what is so.
        if keep(&d) {
            out.push(Arc::new(d));
        }
    }
    by_time(&mut out);
    Ok(out)
}

fn id_of(r: &tokio_postgres::Row) -> NoticeId {
    NoticeId(
        u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
        u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
    )
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Desks for PostgresStore {
    fn guide_leads(&self, guide_id: &str, day: Day) -> Result<Vec<Arc<Decision>>, StorageError> {
        let rows = self.run(self.read(async |c| {
            query(
                c,
                "SELECT lead_id, record FROM decisions WHERE guide_id = $1 AND day = $2",
                &[&guide_id, &day.0],
            )
            .await
        }))?;
        decode_all(&rows, |d| on_guide_desk(d, guide_id, day))
    }

    fn store_queue(
        &self,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(self.read(async |c| {
            query(
                c,
                "SELECT lead_id, record FROM decisions WHERE queue_store = $1 \
                 ORDER BY decided_at, lead_id LIMIT $2",
                &[&store_id, &limit],
            )
            .await
        }))?;
        decode_all(&rows, |d| in_store_queue(d, store_id))
    }

    fn notices(
        &self,
        of: NoticesOf<'_>,
        after: NoticeId,
        limit: usize,
    ) -> Result<Vec<OfferNotice>, StorageError> {
        let (xid, seq) = (signed(after.0), signed(after.1));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let columns = "SELECT xid::text::bigint, seq, body FROM offer_notices";
        let rows = self.run(self.read(async |c| match of {
            NoticesOf::All => {
                let sql = format!(
                    "{columns} WHERE (xid, seq) > ($1::text::xid8, $2) AND {VISIBLE} \
                     ORDER BY xid, seq LIMIT $3"
                );
                query(c, &sql, &[&xid.to_string(), &seq, &limit]).await
            }
            NoticesOf::Guide(who) | NoticesOf::Store(who) => {
                let column = if matches!(of, NoticesOf::Guide(_)) {
                    "guide_id"
                } else {
                    "store_id"
                };
                let sql = format!(
                    "{columns} WHERE {column} = $4 AND (xid, seq) > ($1::text::xid8, $2) \
                     AND {VISIBLE} ORDER BY xid, seq LIMIT $3"
                );
                query(c, &sql, &[&xid.to_string(), &seq, &limit, &who]).await
            }
        }))?;
        rows.iter()
            .map(|r| OfferNotice::from_body(id_of(r), r.get(2)))
            .collect()
    }

    fn last_notice(&self) -> Result<NoticeId, StorageError> {
        let row = self.run(self.read(async |c| {
            let sql = format!(
                "SELECT xid::text::bigint, seq FROM offer_notices WHERE {VISIBLE} \
                 ORDER BY xid DESC, seq DESC LIMIT 1"
            );
            query_opt(c, &sql, &[]).await
        }))?;
        Ok(row.as_ref().map(id_of).unwrap_or_default())
    }

    fn prune_notices(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.run(self.read(async |c| {
            execute(
                c,
                "DELETE FROM offer_notices WHERE at_ms < $1",
                &[&before_ms],
            )
            .await
        }))
    }
}
