//! `leadrouter trail export | verify`: trails as JSON Lines (one canonical event per line, each
//! member's events in `seq` order), and the offline check of a file, a stopped server's data
//! directory, or one member's trail on a running server.

use crate::attribution::recompute::{Mismatch, TrailChecker};
use crate::attribution::{RuleBook, TrailCheck};
use crate::domain::trail::{ChainBreak, MemberHead, TrailEvent};
use crate::storage::{SledConfig, SledStore, Storage, StorageError, for_each_in_trail};
use anyhow::Context;
use leadrouter_proto::v1 as pb;
use std::io::{BufRead, Write};
use std::path::Path;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub events: usize,
    pub members: usize,
    pub orders: usize,
    pub refunds: usize,
    /// The first break: where (a file's line number, else the event's position) and why.
    pub broken: Option<ChainBreak>,
    pub mismatches: Vec<Mismatch>,
}

impl From<TrailCheck> for Report {
    fn from(c: TrailCheck) -> Self {
        Self {
            events: c.events,
            members: c.members,
            orders: c.recomputed.orders,
            refunds: c.recomputed.refunds,
            broken: c.chain.err(),
            mismatches: c.recomputed.mismatches,
        }
    }
}

impl Report {
    pub fn ok(&self) -> bool {
        self.broken.is_none() && self.mismatches.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(b) = &self.broken {
            writeln!(
                f,
                "chain broken at item {}: member {:?} event seq {}: {}",
                b.position, b.member_id, b.seq, b.why
            )?;
        }
        for m in &self.mismatches {
            writeln!(f, "recomputed differently: {m}")?;
        }
        write!(
            f,
            "{}: {} events of {} members; {} orders and {} refunds recomputed, {} differ",
            if self.ok() { "ok" } else { "FAILED" },
            self.events,
            self.members,
            self.orders,
            self.refunds,
            self.mismatches.len()
        )
    }
}

/// Where an offline command reads: a stopped server's sled directory, or a PostgreSQL database
/// (which the servers may go on using meanwhile).
#[derive(Debug, Clone)]
pub enum Offline {
    Dir(std::path::PathBuf),
    Database(String),
}

impl Offline {
    pub fn open(&self) -> anyhow::Result<std::sync::Arc<dyn Storage>> {
        match self {
            Offline::Dir(dir) => Ok(std::sync::Arc::new(open_offline(dir)?)),
            Offline::Database(url) => {
                // Connect only: a reading tool leaves the schema to `db migrate` and the servers.
                let store = crate::storage::PostgresStore::connect(
                    &crate::storage::PostgresConfig::from_env(url.clone()),
                )
                .with_context(|| format!("opening {}", crate::storage::redacted(url)))?;
                Ok(std::sync::Arc::new(store))
            }
        }
    }
}

pub(crate) fn open_offline(dir: &Path) -> anyhow::Result<SledStore> {
    SledStore::open(dir, &SledConfig::default()).map_err(|e| match e {
        StorageError::Locked { path } => anyhow::anyhow!(
            "{path} is in use by a running server: stop it, or check one member live with --server URL --member ID"
        ),
        other => anyhow::Error::new(other).context(format!("opening {}", dir.display())),
    })
}

/// Visits a store's trail events (all, or one member's), in order, until `f` returns false.
fn for_each_event(
    store: &dyn Storage,
    member: Option<&str>,
    f: &mut dyn FnMut(TrailEvent) -> bool,
) -> Result<(), StorageError> {
    match member {
        None => store.scan_trails(f),
        Some(m) => for_each_in_trail(store, m, 1, 1024, f),
    }
}

/// Writes a stopped server's trails (all, or one member's) as JSON Lines; returns the count.
pub fn export_dir(
    from: &Offline,
    member: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    export_store(from.open()?.as_ref(), member, out)
}

/// Writes a store's trails (all, or one member's) as JSON Lines, each member's events followed
/// by its head line; returns the count of events.
pub fn export_store(
    store: &dyn Storage,
    member: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    let mut n = 0;
    let mut failed = None;
    let mut last: Option<TrailEvent> = None;
    let mut damaged: Vec<String> = Vec::new();
    let mut visit = |e: TrailEvent| {
        let mut write = || -> std::io::Result<()> {
            if let Some(prev) = last.as_ref().filter(|p| p.member_id != e.member_id) {
                writeln!(out, "{}", MemberHead::of(prev).to_line())?;
            }
            writeln!(out, "{}", e.to_line())
        };
        match write() {
            Ok(()) => {
                n += 1;
                last = Some(e);
                true
            }
            Err(err) => {
                failed = Some(err);
                false
            }
        }
    };
    match member {
        None => store.scan_trails_lossy(&mut visit, &mut |e| damaged.push(e.to_string()))?,
        Some(_) => for_each_event(store, member, &mut visit)?,
    }
    if let Some(e) = failed {
        return Err(e).context("writing the export");
    }
    if let Some(prev) = &last {
        writeln!(out, "{}", MemberHead::of(prev).to_line()).context("writing the export")?;
    }
    if !damaged.is_empty() {
        for d in &damaged {
            eprintln!("skipped: {d}");
        }
        anyhow::bail!(
            "exported {n} events; skipped {} damaged record(s) listed above (their members' chains will not verify)",
            damaged.len()
        );
    }
    Ok(n)
}

/// Writes the routing decisions of a stopped server's data directory as JSON Lines
/// ([`DecisionLine`](crate::domain::export::DecisionLine)), in the order they were decided,
/// optionally only business days `from..=to` (YYYY-MM-DD). Returns how many were written.
pub fn export_decisions_dir(
    from_store: &Offline,
    from: Option<&str>,
    to: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    use crate::domain::Day;
    use crate::domain::export::DecisionLine;
    let from = from
        .map(Day::parse_date)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = to
        .map(Day::parse_date)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let store = from_store.open()?;
    let mut all = Vec::new();
    store.scan_decisions(&mut |d| {
        if from.is_none_or(|f| d.day >= f) && to.is_none_or(|t| d.day <= t) {
            all.push(d);
        }
        true
    })?;
    all.sort_by(|a, b| (a.decided_at_ms, &a.lead.lead_id).cmp(&(b.decided_at_ms, &b.lead.lead_id)));
    for d in &all {
        let line = serde_json::to_string(&DecisionLine::from(&**d))?;
        writeln!(out, "{line}").context("writing the export")?;
    }
    Ok(all.len())
}

/// Writes one member's trail from a running server (GetTrail, paged) as JSON Lines.
pub async fn export_live(url: &str, member: &str, out: &mut dyn Write) -> anyhow::Result<usize> {
    let mut client =
        pb::attribution_client::AttributionClient::new(super::client::connect(url).await?);
    let mut token = String::new();
    let mut n = 0;
    let mut last: Option<(u64, String)> = None;
    loop {
        let page = client
            .get_trail(pb::GetTrailRequest {
                member_id: member.to_string(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow::anyhow!("GetTrail: {}: {}", s.code(), s.message()))?
            .into_inner();
        for e in &page.events {
            writeln!(out, "{}", e.canonical_json)?;
            n += 1;
            last = Some((e.seq, e.hash.clone()));
        }
        if page.next_page_token.is_empty() {
            if let Some((events, head_hash)) = last {
                let head = MemberHead {
                    member_id: member.to_string(),
                    events,
                    head_hash,
                };
                writeln!(out, "{}", head.to_line())?;
            }
            return Ok(n);
        }
        token = page.next_page_token;
    }
}

/// A member's last event seen in a file, and whether its head line came.
#[derive(Debug, Default)]
struct Tail {
    seq: u64,
    hash: String,
    line: usize,
    headed: bool,
}

/// Checks an exported file: every line parses, chains, and recomputes. A line that is not an
/// event is reported as the break, by line number.
pub fn verify_file(path: &Path, book: &RuleBook) -> anyhow::Result<Report> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut c = TrailChecker::new(book);
    let mut tails: std::collections::HashMap<String, Tail> = std::collections::HashMap::new();
    let mut lines_read = 0;
    let cut = |member: &str, seq: u64, line: usize, why: String| ChainBreak {
        member_id: member.to_string(),
        seq,
        position: line,
        why,
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: reading line {}", path.display(), i + 1))?;
        lines_read = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if MemberHead::is_head(&line) {
            let h = match MemberHead::from_line(&line) {
                Ok(h) => h,
                Err(why) => {
                    let mut r = Report::from(c.finish());
                    r.broken = Some(cut("", 0, i + 1, format!("line {}: {why}", i + 1)));
                    return Ok(r);
                }
            };
            let seen = tails.get_mut(&h.member_id);
            let (seq, hash) = seen
                .as_ref()
                .map_or((0, String::new()), |t| (t.seq, t.hash.clone()));
            if seq != h.events || hash != h.head_hash {
                let mut r = Report::from(c.finish());
                r.broken = Some(cut(
                    &h.member_id,
                    seq,
                    i + 1,
                    format!(
                        "the export was cut short: its head line says {} events ending in {}, the file holds {seq}",
                        h.events,
                        &h.head_hash.get(..12).unwrap_or(&h.head_hash)
                    ),
                ));
                return Ok(r);
            }
            if let Some(t) = seen {
                t.headed = true;
            }
            continue;
        }
        match TrailEvent::from_line(&line) {
            Ok(e) => {
                let t = tails.entry(e.member_id.clone()).or_default();
                if t.headed {
                    let mut r = Report::from(c.finish());
                    r.broken = Some(cut(
                        &e.member_id,
                        e.seq,
                        i + 1,
                        "an event follows the member's head line".into(),
                    ));
                    return Ok(r);
                }
                *t = Tail {
                    seq: e.seq,
                    hash: e.hash.clone(),
                    line: i + 1,
                    headed: false,
                };
                c.push(e, Some(i + 1));
            }
            Err(why) => {
                let mut r = Report::from(c.finish());
                r.broken = Some(ChainBreak {
                    member_id: String::new(),
                    seq: 0,
                    position: i + 1,
                    why: format!("line {} is not a trail event: {why}", i + 1),
                });
                return Ok(r);
            }
        }
    }
    let mut r = Report::from(c.finish());
    if r.broken.is_none() {
        let mut headless: Vec<(&String, &Tail)> = tails.iter().filter(|(_, t)| !t.headed).collect();
        headless.sort_by_key(|(_, t)| t.line);
        if let Some((m, t)) = headless.first() {
            r.broken = Some(cut(
                m,
                t.seq,
                lines_read,
                format!(
                    "the export was cut short: no head line after the member's events (last seen: seq {}, line {}); {} member(s) lack one",
                    t.seq,
                    t.line,
                    headless.len()
                ),
            ));
        }
    }
    Ok(r)
}

/// Checks a stopped server's data directory (all members, or one).
pub fn verify_dir(from: &Offline, member: Option<&str>, book: &RuleBook) -> anyhow::Result<Report> {
    verify_store(from.open()?.as_ref(), member, book)
}

/// Checks a store's trails (all members, or one): every chain, every order's owner and split.
pub fn verify_store(
    store: &dyn Storage,
    member: Option<&str>,
    book: &RuleBook,
) -> anyhow::Result<Report> {
    let mut c = TrailChecker::grouped(book);
    for_each_event(store, member, &mut |e| {
        c.push(e, None);
        true
    })?;
    Ok(c.finish().into())
}

/// Checks one member's trail, or every member's, on a running server (VerifyTrail).
pub async fn verify_live(url: &str, member: Option<&str>) -> anyhow::Result<Report> {
    let mut client =
        pb::attribution_client::AttributionClient::new(super::client::connect(url).await?);
    let v = client
        .verify_trail(pb::VerifyTrailRequest {
            member_id: member.unwrap_or_default().to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("VerifyTrail: {}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(Report {
        events: v.events as usize,
        members: v.members as usize,
        orders: v.orders as usize,
        refunds: v.refunds as usize,
        broken: (!v.chain_error.is_empty()).then(|| ChainBreak {
            member_id: v.broken_member_id.clone(),
            seq: v.broken_seq,
            position: v.broken_seq as usize,
            why: v.chain_error.clone(),
        }),
        mismatches: v
            .mismatches
            .into_iter()
            .map(|what| Mismatch {
                member_id: member.unwrap_or_default().to_string(),
                seq: 0,
                what,
            })
            .collect(),
    })
}

/// Where the models read journeys from.
#[derive(Debug, Clone)]
pub enum JourneySource {
    /// An exported trail file (JSON Lines); steps named by channel or kind.
    Trails(std::path::PathBuf, crate::attribution::journeys::StepBy),
    /// A journeys CSV (`path,total_conversions,total_conversion_value,total_null`), gzip or not.
    Csv(std::path::PathBuf),
}

/// Reads journeys from a source.
pub fn read_journeys(
    source: &JourneySource,
) -> anyhow::Result<leadrouter_models::attribution::Journeys> {
    use crate::attribution::journeys::JourneyBuilder;
    match source {
        JourneySource::Csv(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            Ok(leadrouter_models::attribution::Journeys::from_csv(
                f,
                &p.display().to_string(),
            )?)
        }
        JourneySource::Trails(p, by) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let mut b = JourneyBuilder::new(*by);
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let e = TrailEvent::from_export_line(&line).map_err(|why| {
                    anyhow::anyhow!("{}:{}: not a trail event: {why}", p.display(), i + 1)
                })?;
                if let Some(e) = e {
                    b.push(&e);
                }
            }
            Ok(b.finish())
        }
    }
}

/// Every model's credited conversions per channel, as an aligned table or CSV.
pub fn models_table(
    j: &leadrouter_models::attribution::Journeys,
    half_life: f64,
    csv: bool,
) -> anyhow::Result<String> {
    use leadrouter_models::attribution::{Model, attribute};
    let models = Model::all(half_life);
    let credits = models
        .iter()
        .map(|m| attribute(j, *m))
        .collect::<Result<Vec<_>, _>>()?;
    let names = j.channels();
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|a, b| names[*a].cmp(&names[*b]));
    let mut out = String::new();
    use std::fmt::Write as _;
    if csv {
        let _ = writeln!(out, "channel,{}", models.map(|m| m.name()).join(","));
        for c in order {
            let row: Vec<String> = credits
                .iter()
                .map(|k| format!("{:.6}", k.conversions[c]))
                .collect();
            let _ = writeln!(out, "{},{}", names[c], row.join(","));
        }
        return Ok(out);
    }
    let width = names.iter().map(|c| c.len()).max().unwrap_or(7).max(7);
    let _ = write!(out, "{:<width$}", "channel");
    for m in &models {
        let _ = write!(out, " {:>14}", m.name());
    }
    let _ = writeln!(out);
    for c in order {
        let _ = write!(out, "{:<width$}", names[c]);
        for k in &credits {
            let _ = write!(out, " {:>14.2}", k.conversions[c]);
        }
        let _ = writeln!(out);
    }
    let _ = write!(
        out,
        "{} journeys, {:.0} conversions credited in every column (time decay half-life {half_life})",
        j.journeys().len(),
        j.total_conversions()
    );
    Ok(out)
}
