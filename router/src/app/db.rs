//! `leadrouter db`: the PostgreSQL database's schema (`migrate`, `status`), and moving in from
//! the embedded store (`import --from-data-dir`), verified before it reports success.

use super::trail::{Report, open_offline, verify_store};
use crate::attribution::RuleBook;
use crate::catalog::{Network, RegionTree};
use crate::domain::Day;
use crate::domain::trail::TrailEvent;
use crate::storage::{
    Append, Appended, DATABASE_URL_ENV, Decisions, Logs, MIGRATIONS, NetworkSave, Networks,
    PostgresConfig, PostgresStore, TrailKey, Trails, redacted,
};
use anyhow::Context;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// The database URL: `--database-url`, else `LEADROUTER_DATABASE_URL`.
pub fn database_url(flag: Option<String>) -> anyhow::Result<String> {
    flag.or_else(|| std::env::var(DATABASE_URL_ENV).ok())
        .ok_or_else(|| anyhow::anyhow!("--database-url: required (or set {DATABASE_URL_ENV})"))
}

fn connect(url: &str) -> anyhow::Result<PostgresStore> {
    PostgresStore::connect(&PostgresConfig::from_env(url))
        .with_context(|| format!("connecting to {}", redacted(url)))
}

/// Applies the migrations the database lacks; says what it did.
pub fn migrate(url: &str) -> anyhow::Result<String> {
    let store = connect(url)?;
    let applied = store.migrate()?;
    let at = MIGRATIONS.last().map_or(0, |m| m.version);
    Ok(if applied.is_empty() {
        format!("{}: schema up to date at version {at}", redacted(url))
    } else {
        let names: Vec<String> = MIGRATIONS
            .iter()
            .filter(|m| applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.name))
            .collect();
        format!(
            "{}: applied {}; schema at version {at}",
            redacted(url),
            names.join(", ")
        )
    })
}

/// The schema versions applied, and the ones this binary would apply.
pub fn status(url: &str) -> anyhow::Result<String> {
    let store = connect(url)?;
    let applied = store.schema_versions()?;
    let mut out = format!("{}\n", redacted(url));
    for (v, name) in &applied {
        out.push_str(&format!("applied  {v} {name}\n"));
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        out.push_str(&format!("pending  {} {}\n", m.version, m.name));
    }
    Ok(out.trim_end().to_string())
}

/// What an import copied and what its check found.
#[derive(Debug)]
pub struct Imported {
    pub decisions: u64,
    pub counts: usize,
    pub events: usize,
    pub members: usize,
    pub audit: usize,
    pub disputes: usize,
    pub network: Option<String>,
    pub check: Report,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} decisions, {} guide-day counts, {} trail events of {} members, {} audit \
             entries, {} disputes, network {}\nchecked in the database: {}",
            self.decisions,
            self.counts,
            self.events,
            self.members,
            self.audit,
            self.disputes,
            self.network.as_deref().unwrap_or("(none saved)"),
            self.check
        )
    }
}

/// Copies numbered records page by page (`read(from)`, then `write(page)`); returns how many.
fn copy_numbered(
    read: impl Fn(u64) -> Result<Vec<(u64, String)>, crate::storage::StorageError>,
    write: impl Fn(&[(u64, String)]) -> Result<(), crate::storage::StorageError>,
) -> anyhow::Result<usize> {
    let (mut copied, mut from) = (0, 1);
    loop {
        let page = read(from)?;
        let Some(last) = page.last().map(|e| e.0) else {
            return Ok(copied);
        };
        write(&page)?;
        copied += page.len();
        from = last + 1;
    }
}

/// Events a page of an import appends at most.
const CHUNK: usize = 500;

fn append_chunk(dst: &PostgresStore, events: &mut Vec<TrailEvent>) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let appends: Vec<Append<'_>> = events
        .iter()
        .map(|e| Append {
            line: e.to_line(),
            event: e.clone(),
            key: TrailKey::of(e),
        })
        .collect();
    match dst.append_events(&appends)? {
        Appended::Stored => {}
        other => {
            let e = &events[0];
            anyhow::bail!(
                "member {:?} from seq {}: the database refused the events ({other:?}); is it being \
                 written by a server?",
                e.member_id,
                e.seq
            )
        }
    }
    events.clear();
    Ok(())
}

/// Copies a stopped server's sled directory into an empty PostgreSQL database (migrated
/// first), then checks the copy: every chain verifies and every order's owner and split
/// recomputes in the database, and the decisions, counts, events, audit entries and disputes
/// match the source's.
pub fn import(dir: &Path, url: &str, book: &RuleBook) -> anyhow::Result<Imported> {
    let src = open_offline(dir)?;
    let dst = PostgresStore::open(&PostgresConfig::from_env(url))
        .with_context(|| format!("opening {}", redacted(url)))?;
    anyhow::ensure!(
        dst.is_empty()?,
        "{} already holds data: import into an empty database",
        redacted(url)
    );
    // The network, at its version.
    let network = match src.network()? {
        Some(spec) => {
            let version = match src.network_version()? {
                Some(v) => v,
                None => Network::build(Arc::new(RegionTree::embedded()), spec.clone())
                    .context("the saved network is not valid")?
                    .version()
                    .to_string(),
            };
            dst.save_network(&NetworkSave {
                spec: &spec,
                version: &version,
                expected: None,
                audit: None,
            })?;
            Some(version)
        }
        None => None,
    };
    // The numbered logs, under their own numbers.
    let audit = copy_numbered(
        |from| src.audit_from(from, 1_000),
        |page| dst.import_audit(page),
    )?;
    let disputes = copy_numbered(
        |from| src.disputes_from(from, 1_000),
        |page| dst.import_disputes(page),
    )?;
    // Trails, member by member, in chunks chained on the head just written.
    let (mut events, mut members) = (0, 0);
    let mut chunk: Vec<TrailEvent> = Vec::new();
    let mut failed: Option<anyhow::Error> = None;
    src.scan_trails(&mut |e| {
        if (chunk.last().is_some_and(|p| p.member_id != e.member_id) || chunk.len() >= CHUNK)
            && let Err(err) = append_chunk(&dst, &mut chunk)
        {
            failed = Some(err);
            return false;
        }
        if chunk.last().is_none_or(|p| p.member_id != e.member_id) && e.seq == 1 {
            members += 1;
        }
        events += 1;
        chunk.push(e);
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    append_chunk(&dst, &mut chunk)?;
    // Decisions in batches, then each of their days' counts.
    let mut days = BTreeSet::new();
    let mut batch = Vec::new();
    let mut failed = None;
    src.scan_decisions(&mut |d| {
        days.insert(d.day);
        batch.push(d);
        if batch.len() >= 1_000 {
            if let Err(e) = dst.import_decisions(&batch) {
                failed = Some(e);
                return false;
            }
            batch.clear();
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    dst.import_decisions(&batch)?;
    let mut counts: Vec<(Day, String, u32)> = Vec::new();
    for &day in &days {
        counts.extend(src.day_counts(day)?.into_iter().map(|(g, n)| (day, g, n)));
    }
    dst.import_counts(&counts)?;
    // The check, on what the database now holds.
    let decisions = src.decision_count()?;
    anyhow::ensure!(
        dst.decision_count()? == decisions,
        "decisions: {} in the source, {} in the database",
        decisions,
        dst.decision_count()?
    );
    for &day in &days {
        anyhow::ensure!(
            src.day_counts(day)? == dst.day_counts(day)?,
            "the guides' counts of {day} differ between the source and the database"
        );
    }
    anyhow::ensure!(
        src.audit_head()? == dst.audit_head()? && src.dispute_head()? == dst.dispute_head()?,
        "the audit log or the disputes differ between the source and the database"
    );
    let check = verify_store(&dst, None, book)?;
    anyhow::ensure!(
        check.events == events,
        "{} events read back from the database, {events} written",
        check.events
    );
    anyhow::ensure!(check.ok(), "the imported trails do not verify: {check}");
    Ok(Imported {
        decisions,
        counts: counts.len(),
        events,
        members,
        audit,
        disputes,
        network,
        check,
    })
}
