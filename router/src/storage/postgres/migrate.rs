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
    Migration {
        version: 7,
        name: "desks",
        sql: include_str!("migrations/0007_desks.sql"),
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
                if m.version == 7 {
                    fill_desks(c).await?;
                }
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

/// Version 7's desk columns for the decisions already stored (the SQL cannot read a record),
/// in pages of 1,000 by lead id, in the migration's transaction.
async fn fill_desks(c: &super::Conn) -> Result<(), tokio_postgres::Error> {
    let mut after = String::new();
    loop {
        let rows = query(
            c,
            "SELECT lead_id, record FROM decisions WHERE lead_id > $1 ORDER BY lead_id LIMIT 1000",
            &[&after],
        )
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get(0);
        let (mut leads, mut guides, mut queues, mut at) = (vec![], vec![], vec![], vec![]);
        for r in &rows {
            // A record this binary cannot read keeps empty columns (and is reported where it
            // is read, as everywhere).
            let Ok(d) = crate::storage::codec::decode_decision(r.get(1)) else {
                continue;
            };
            let (guide, queue) = crate::storage::desk_of(&d);
            leads.push(r.get::<_, String>(0));
            guides.push(guide.map(|(g, _)| g.to_string()));
            queues.push(queue.map(str::to_string));
            at.push(d.decided_at_ms);
        }
        execute(
            c,
            "UPDATE decisions d SET guide_id = u.g, queue_store = u.q, decided_at = u.a \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(l, g, q, a) \
             WHERE d.lead_id = u.l",
            &[&leads, &guides, &queues, &at],
        )
        .await?;
    }
}
