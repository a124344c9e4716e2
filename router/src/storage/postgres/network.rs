use super::logs::next_audit;
use super::{PostgresStore, Step, corrupt, execute, query_one, query_opt};
use crate::catalog::NetworkSpec;
use crate::storage::{
    NetworkSave, NetworkSaved, Networks, Publication, ReplicaState, StorageError,
};

const NETWORK_LOCK: i64 = 0x6c65_6164_0003;

impl Networks for PostgresStore {
    fn network(&self) -> Result<Option<NetworkSpec>, StorageError> {
        let row =
            self.run(self.read(async |c| query_opt(c, "SELECT spec FROM network", &[]).await))?;
        row.map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| corrupt("network", e)))
            .transpose()
    }

    fn network_version(&self) -> Result<Option<String>, StorageError> {
        let row =
            self.run(self.read(async |c| query_opt(c, "SELECT version FROM network", &[]).await))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Under the network's lock (then the audit lock, always in that order): the version
    /// compared, the network and its audit entry written in one transaction.
    fn save_network(&self, save: &NetworkSave<'_>) -> Result<NetworkSaved, StorageError> {
        let spec =
            serde_json::to_string(save.spec).map_err(|e| StorageError::Backend(e.to_string()))?;
        self.run(self.transact(true, async |c| {
            query_one(c, "SELECT pg_advisory_xact_lock($1)", &[&NETWORK_LOCK]).await?;
            let stored: Option<String> = query_opt(c, "SELECT version FROM network", &[])
                .await?
                .map(|r| r.get(0));
            if let Some(expected) = save.expected
                && stored.as_deref() != Some(expected)
            {
                return Ok(Step::Rollback(NetworkSaved::Moved(stored)));
            }
            execute(
                c,
                "INSERT INTO network (id, version, spec) VALUES (true, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, spec = EXCLUDED.spec",
                &[&save.version, &spec],
            )
            .await?;
            let audit_seq = match save.audit {
                Some(line) => Some(next_audit(c, line).await?),
                None => None,
            };
            execute(
                c,
                "SELECT pg_notify($1, $2)",
                &[&super::NETWORK_CHANNEL, &save.version],
            )
            .await?;
            Ok(Step::Commit(NetworkSaved::Saved { audit_seq }))
        }))
    }

    /// One transaction: the row numbered one past the last (the upsert's row lock orders
    /// concurrent publishers), and a notification on the network's channel so that the other
    /// replicas take it up at once.
    fn publish(
        &self,
        name: &str,
        by: &str,
        published_at_ms: i64,
        body: &[u8],
    ) -> Result<u64, StorageError> {
        let seq = self.run(self.transact(true, async |c| {
            let row = query_one(
                c,
                "INSERT INTO publications AS p (name, seq, published_at, by_whom, body) \
                 VALUES ($1, 1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET seq = p.seq + 1, \
                 published_at = EXCLUDED.published_at, by_whom = EXCLUDED.by_whom, \
                 body = EXCLUDED.body RETURNING seq",
                &[&name, &published_at_ms, &by, &body],
            )
            .await?;
            let seq: i64 = row.get(0);
            execute(
                c,
                "SELECT pg_notify($1, $2)",
                &[&super::NETWORK_CHANNEL, &format!("{name}:{seq}")],
            )
            .await?;
            Ok(Step::Commit(seq))
        }))?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    fn publication_seq(&self, name: &str) -> Result<u64, StorageError> {
        let row = self.run(self.read(async |c| {
            query_opt(c, "SELECT seq FROM publications WHERE name = $1", &[&name]).await
        }))?;
        Ok(row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    fn publication(&self, name: &str) -> Result<Option<Publication>, StorageError> {
        let row = self.run(self.read(async |c| {
            query_opt(
                c,
                "SELECT seq, published_at, by_whom, body FROM publications WHERE name = $1",
                &[&name],
            )
            .await
        }))?;
        Ok(row.map(|r| Publication {
            seq: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            published_at_ms: r.get(1),
            by: r.get(2),
            body: r.get(3),
        }))
    }

    fn announce(&self, r: &ReplicaState) -> Result<(), StorageError> {
        self.run(self.read(async |c| {
            execute(
                c,
                "INSERT INTO replicas (id, address, started_at, seen_at, network_version, models, \
                 rules) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
                 address = EXCLUDED.address, seen_at = EXCLUDED.seen_at, \
                 network_version = EXCLUDED.network_version, models = EXCLUDED.models, \
                 rules = EXCLUDED.rules",
                &[
                    &r.id,
                    &r.address,
                    &r.started_at_ms,
                    &r.seen_at_ms,
                    &r.network_version,
                    &r.models,
                    &r.rules,
                ],
            )
            .await
        }))?;
        Ok(())
    }

    fn replicas(&self, since_ms: i64) -> Result<Vec<ReplicaState>, StorageError> {
        let rows = self.run(self.read(async |c| {
            super::query(
                c,
                "SELECT id, address, started_at, seen_at, network_version, models, rules \
                 FROM replicas WHERE seen_at >= $1 ORDER BY id",
                &[&since_ms],
            )
            .await
        }))?;
        Ok(rows
            .iter()
            .map(|r| ReplicaState {
                id: r.get(0),
                address: r.get(1),
                started_at_ms: r.get(2),
                seen_at_ms: r.get(3),
                network_version: r.get(4),
                models: r.get(5),
                rules: r.get(6),
            })
            .collect())
    }
}
