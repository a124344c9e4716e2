use super::logs::next_audit;
use super::{PostgresStore, Step, corrupt, execute, query_one, query_opt};
use crate::catalog::NetworkSpec;
use crate::storage::{NetworkSave, NetworkSaved, Networks, ReplicaState, StorageError};

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
