use super::{PostgresStore, Step, execute, query, query_one, query_opt};
use crate::storage::{DisputeOpened, LineOf, Logs, StorageError, dispute_keys};

/// Transaction-scoped advisory locks (never session locks: the pool does not reset sessions).
pub(super) const AUDIT_LOCK: i64 = 0x6c65_6164_0001;
const DISPUTES_LOCK: i64 = 0x6c65_6164_0002;

fn seq_from(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn seq_to(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends an audit entry under the next number inside the caller's transaction.
pub(super) async fn next_audit(
    c: &super::Conn,
    line: LineOf<'_>,
) -> Result<u64, tokio_postgres::Error> {
    query_one(c, "SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK]).await?;
    let next: i64 = query_one(c, "SELECT coalesce(max(seq), 0) + 1 FROM audit", &[])
        .await?
        .get(0);
    let seq = seq_from(next);
    execute(
        c,
        "INSERT INTO audit (seq, line) VALUES ($1, $2)",
        &[&next, &line(seq)],
    )
    .await?;
    Ok(seq)
}

impl PostgresStore {
    fn numbered(
        &self,
        sql: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(self.read(async |c| query(c, sql, &[&seq_to(from), &limit]).await))?;
        Ok(rows
            .iter()
            .map(|r| (seq_from(r.get(0)), r.get(1)))
            .collect())
    }

    fn head_of(&self, sql: &str) -> Result<Option<u64>, StorageError> {
        let row = self.run(self.read(async |c| query_one(c, sql, &[]).await))?;
        Ok(row.get::<_, Option<i64>>(0).map(seq_from))
    }
}

impl Logs for PostgresStore {
    fn append_audit(&self, line: LineOf<'_>) -> Result<u64, StorageError> {
        self.run(self.transact(true, async |c| Ok(Step::Commit(next_audit(c, line).await?))))
    }

    fn append_audit_once(&self, key: &str, line: LineOf<'_>) -> Result<u64, StorageError> {
        self.run(self.transact(true, async |c| {
            query_one(c, "SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK]).await?;
            if let Some(row) =
                query_opt(c, "SELECT seq FROM audit_keys WHERE key = $1", &[&key]).await?
            {
                return Ok(Step::Rollback(seq_from(row.get(0))));
            }
            let seq = next_audit(c, line).await?;
            execute(
                c,
                "INSERT INTO audit_keys (key, seq) VALUES ($1, $2)",
                &[&key, &seq_to(seq)],
            )
            .await?;
            Ok(Step::Commit(seq))
        }))
    }

    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StorageError> {
        self.numbered(
            "SELECT seq, line FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
            from_seq,
            limit,
        )
    }

    fn audit_head(&self) -> Result<Option<u64>, StorageError> {
        self.head_of("SELECT max(seq) FROM audit")
    }

    /// Under the disputes' lock: the request id, then the order's open dispute, then the next
    /// number; the unique keys (`request_id`, one open dispute per order) back all three.
    fn open_dispute(
        &self,
        order_id: &str,
        request_id: Option<&str>,
        line: LineOf<'_>,
    ) -> Result<DisputeOpened, StorageError> {
        self.run(self.transact(true, async |c| {
            query_one(c, "SELECT pg_advisory_xact_lock($1)", &[&DISPUTES_LOCK]).await?;
            if let Some(r) = request_id
                && let Some(row) =
                    query_opt(c, "SELECT seq FROM disputes WHERE request_id = $1", &[&r]).await?
            {
                return Ok(Step::Rollback(DisputeOpened::SameRequest(seq_from(
                    row.get(0),
                ))));
            }
            if let Some(row) = query_opt(
                c,
                "SELECT seq FROM disputes WHERE order_id = $1 AND open",
                &[&order_id],
            )
            .await?
            {
                return Ok(Step::Rollback(DisputeOpened::OrderHasOpen(seq_from(
                    row.get(0),
                ))));
            }
            let next: i64 = query_one(c, "SELECT coalesce(max(seq), 0) + 1 FROM disputes", &[])
                .await?
                .get(0);
            let seq = seq_from(next);
            let record = line(seq);
            let open = dispute_keys(&record).is_none_or(|(_, _, open)| open);
            execute(
                c,
                "INSERT INTO disputes (seq, order_id, request_id, open, line) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&next, &order_id, &request_id, &open, &record],
            )
            .await?;
            Ok(Step::Commit(DisputeOpened::Opened(seq)))
        }))
    }

    fn replace_dispute(
        &self,
        seq: u64,
        order_id: &str,
        previous: &str,
        line: &str,
        open: bool,
    ) -> Result<bool, StorageError> {
        self.run(self.transact(true, async |c| {
            let n = execute(
                c,
                "UPDATE disputes SET line = $3, open = $4 \
                 WHERE seq = $1 AND order_id = $5 AND line = $2",
                &[&seq_to(seq), &previous, &line, &open, &order_id],
            )
            .await?;
            Ok(if n == 1 {
                Step::Commit(true)
            } else {
                Step::Rollback(false)
            })
        }))
    }

    fn disputes_from(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        self.numbered(
            "SELECT seq, line FROM disputes WHERE seq >= $1 ORDER BY seq LIMIT $2",
            from_seq,
            limit,
        )
    }

    fn dispute_head(&self) -> Result<Option<u64>, StorageError> {
        self.head_of("SELECT max(seq) FROM disputes")
    }
}
