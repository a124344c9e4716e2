//! Schema migrations, in the repository beside the backend (`migrations/`), applied in order
//! under a transaction-scoped advisory lock, each in the transaction that records it: replicas
//! starting together apply each once, and a failed migration leaves the schema as it was.

use super::{PostgresStore, Step, execute, query, query_one};
use crate::storage::StorageError;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, by version.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "storage",
        sql: include_str!("migrations/0001_storage.sql"),
    },
    Migration {
        version: 2,
        name: "one_statement_writes",
        sql: include_str!("migrations/0002_one_statement_writes.sql"),
    },
    Migration {
        version: 3,
        name: "replicas",
        sql: include_str!("migrations/0003_replicas.sql"),
    },
    Migration {
        version: 4,
        name: "audit_keys",
        sql: include_str!("migrations/0004_audit_keys.sql"),
    },
    Migration {
        version: 5,
        name: "route_in_one_round_trip",
        sql: include_str!("migrations/0005_route_in_one_round_trip.sql"),
    },
    Migration {
        version: 6,
        name: "publications",
        sql: include_str!("migrations/0006_publications.sql"),
    },
];

const MIGRATE_LOCK: i64 = 0x6c65_6164_0000;

impl PostgresStore {
    /// Applies the migrations the database lacks; returns their versions. Refuses a database
    /// whose schema is newer than this binary's.
    pub fn migrate(&self) -> Result<Vec<i32>, StorageError> {
        let newest = MIGRATIONS.last().map_or(0, |m| m.version);
        let result = self.run(self.transact(true, async |c| {
            query_one(c, "SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK]).await?;
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ( \
                   version integer PRIMARY KEY, name text NOT NULL, \
                   applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
            let current: i32 = query_one(
                c,
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
            if current > newest {
                return Ok(Step::Rollback(Err(current)));
            }
            let mut applied = Vec::new();
            for m in MIGRATIONS.iter().filter(|m| m.version > current) {
                c.batch_execute(m.sql).await?;
                execute(
                    c,
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[&m.version, &m.name],
                )
                .await?;
                applied.push(m.version);
            }
            Ok(Step::Commit(Ok(applied)))
        }))?;
        result.map_err(|current| {
            StorageError::Backend(format!(
                "the database's schema is at version {current}, newer than this binary's \
                 {newest}: run a newer leadrouter"
            ))
        })
    }

    /// The versions applied to the database, oldest first (empty before the first migration).
    pub fn schema_versions(&self) -> Result<Vec<(i32, String)>, StorageError> {
        let rows = self.run(self.read(async |c| {
            let exists: bool = query_one(
                c,
                "SELECT to_regclass('schema_migrations') IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
            if !exists {
                return Ok(Vec::new());
            }
            query(
                c,
                "SELECT version, name FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
        }))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
