use super::trails::{AppendRows, HeadWrite};
use super::{PostgresStore, Step, corrupt, query, query_one, query_opt};
use crate::domain::{Day, Decision};
use crate::storage::{
    Committed, Decisions, RouteCommit, StorageError, check_chain, codec, open_offer,
};
use std::sync::Arc;
use tokio_postgres::Row;

const INSERT_DECISION: &str = "INSERT INTO decisions (lead_id, version, day, offer_expires_at, record) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lead_id) DO NOTHING RETURNING version";
const REPLACE_DECISION: &str = "UPDATE decisions SET version = $2, day = $3, offer_expires_at = $4, \
     lease_until = NULL, record = $5 WHERE lead_id = $1 AND version = $6 RETURNING version";
/// Takes one of the guide's leads only below `capacity` (`CHECK (used <= capacity)` backs it).
const TAKE: &str = "INSERT INTO guide_counts (day, guide_id, used, capacity) VALUES ($1, $2, 1, $3) \
     ON CONFLICT (day, guide_id) DO UPDATE SET used = guide_counts.used + 1, \
     capacity = EXCLUDED.capacity WHERE guide_counts.used < EXCLUDED.capacity RETURNING used";
const RELEASE: &str =
    "UPDATE guide_counts SET used = used - 1 WHERE day = $1 AND guide_id = $2 AND used > 0";
const COUNT: &str = "SELECT used FROM guide_counts WHERE day = $1 AND guide_id = $2";

/// Why a route's commit wrote nothing.
enum Refused {
    Replayed,
    Moved,
    Full,
    HeadMoved,
}

fn decode(row: &Row) -> Result<Arc<Decision>, StorageError> {
    let lead: String = row.get(0);
    let bytes: Vec<u8> = row.get(1);
    codec::decode_decision(&bytes)
        .map(Arc::new)
        .map_err(|why| corrupt(format!("decision {lead}"), why))
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn capacity(c: u32) -> i32 {
    i32::try_from(c).unwrap_or(i32::MAX)
}

impl PostgresStore {
    async fn decision_async(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        let row = self
            .read(async |c| {
                query_opt(
                    c,
                    "SELECT lead_id, record FROM decisions WHERE lead_id = $1",
                    &[&lead_id],
                )
                .await
            })
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn guide_count_async(&self, guide_id: &str, day: Day) -> Result<u32, StorageError> {
        let row = self
            .read(async |c| query_opt(c, COUNT, &[&day.0, &guide_id]).await)
            .await?;
        Ok(row.map_or(0, |r| count(r.get(0))))
    }

    /// One transaction: the decision's write, the capacity taken and given back (in key order,
    /// so that two commits never wait on each other's counts), the member's head moved and the
    /// events, all sent at once; then COMMIT, or ROLLBACK on the first refusal.
    async fn commit_route_async(&self, c: &RouteCommit<'_>) -> Result<Committed, StorageError> {
        let d = c.decision;
        check_chain(c.events)?;
        if c.events.iter().any(|a| a.key.is_some()) {
            return Err(StorageError::Backend(
                "a route's events carry no id key".into(),
            ));
        }
        let record = codec::encode_decision(d);
        let expires = open_offer(d).map(|(at, _)| at);
        let version = i32::try_from(d.version).unwrap_or(i32::MAX);
        let replaces = c.replaces.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        let lead = d.lead.lead_id.as_str();
        let rows = AppendRows::of(c.events);
        let head = HeadWrite::of(c.events);
        // The counts touched, in key order: `(day, guide, take?)`.
        let mut counts: Vec<(i32, &str, Option<u32>)> = Vec::new();
        if let Some(t) = c.take {
            counts.push((t.day.0, t.guide_id, Some(t.capacity)));
        }
        if let Some((g, day)) = c.release
            && c.take.is_none_or(|t| t.guide_id != g || t.day != day)
        {
            counts.push((day.0, g, None));
        }
        counts.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        let outcome = self
            .transact(false, async |client| {
                let write = client
                    .prepare_cached(match replaces {
                        None => INSERT_DECISION,
                        Some(_) => REPLACE_DECISION,
                    })
                    .await?;
                let take = client.prepare_cached(TAKE).await?;
                let release = client.prepare_cached(RELEASE).await?;
                let head = match &head {
                    Some(h) => Some((h, h.prepare(client).await?)),
                    None => None,
                };
                let rows = match &rows {
                    Some(r) => Some((r, r.prepare(client).await?)),
                    None => None,
                };
                // Every statement is queued at the first poll, in this order; then the results
                // are read in the same order, and the first refusal or error decides.
                let write = async {
                    match replaces {
                        None => {
                            client
                                .query_opt(&write, &[&lead, &version, &d.day.0, &expires, &record])
                                .await
                        }
                        Some(v) => {
                            client
                                .query_opt(
                                    &write,
                                    &[&lead, &version, &d.day.0, &expires, &record, &v],
                                )
                                .await
                        }
                    }
                };
                let count_at = |i: usize| {
                    let (take, release) = (&take, &release);
                    let at = counts.get(i).copied();
                    async move {
                        match at {
                            None => Ok(None),
                            Some((_, _, Some(0))) => Ok(Some(None)),
                            Some((day, guide, Some(cap))) => client
                                .query_opt(take, &[&day, &guide, &capacity(cap)])
                                .await
                                .map(|r| Some(r.map(|r| count(r.get(0))))),
                            Some((day, guide, None)) => client
                                .execute(release, &[&day, &guide])
                                .await
                                .map(|_| Some(Some(0))),
                        }
                    }
                };
                // A same-guide, same-day take and release leaves the count as it was (after
                // the take's check).
                let same = c.take.zip(c.release).and_then(|(t, (g, day))| {
                    (t.guide_id == g && t.day == day).then_some((day.0, g))
                });
                let give_back = async {
                    match same {
                        Some((day, g)) => client.execute(&release, &[&day, &g]).await.map(|_| ()),
                        None => Ok(()),
                    }
                };
                let moved_head = async {
                    match &head {
                        Some((h, s)) => h.write(client, s).await,
                        None => Ok(true),
                    }
                };
                let events = async {
                    match &rows {
                        Some((r, s)) => r.insert(client, s).await,
                        None => Ok(()),
                    }
                };
                let (write, first, second, give_back, moved_head, events) = tokio::join!(
                    write,
                    count_at(0),
                    count_at(1),
                    give_back,
                    moved_head,
                    events
                );
                if write?.is_none() {
                    return Ok(Step::Rollback(Err(match replaces {
                        None => Refused::Replayed,
                        Some(_) => Refused::Moved,
                    })));
                }
                let mut used = None;
                for counted in [first?, second?].into_iter().flatten() {
                    match (counted, c.take.is_some()) {
                        (None, _) => return Ok(Step::Rollback(Err(Refused::Full))),
                        (Some(n), true) if n > 0 => used = Some(n),
                        _ => {}
                    }
                }
                give_back?;
                if !moved_head? {
                    return Ok(Step::Rollback(Err(Refused::HeadMoved)));
                }
                events?;
                Ok(Step::Commit(Ok(used)))
            })
            .await?;
        match outcome {
            Ok(used) => Ok(Committed::Stored { used }),
            Err(Refused::Replayed) => match self.decision_async(lead).await? {
                Some(s) => Ok(Committed::Replayed(s)),
                None => Err(StorageError::Contended(format!(
                    "lead {lead:?} was being stored by another writer that gave up"
                ))),
            },
            Err(Refused::Moved) => Ok(Committed::Moved(self.decision_async(lead).await?)),
            Err(Refused::Full) => {
                let t = c.take.expect("full only when taking");
                Ok(Committed::Full {
                    used: self.guide_count_async(t.guide_id, t.day).await?,
                })
            }
            Err(Refused::HeadMoved) => Ok(Committed::HeadMoved),
        }
    }
}

impl Decisions for PostgresStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        self.run(self.decision_async(lead_id))
    }

    fn commit_route(&self, commit: &RouteCommit<'_>) -> Result<Committed, StorageError> {
        self.run(self.commit_route_async(commit))
    }

    fn guide_count(&self, guide_id: &str, day: Day) -> Result<u32, StorageError> {
        self.run(self.guide_count_async(guide_id, day))
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError> {
        let rows = self.run(self.read(async |c| {
            query(
                c,
                "SELECT guide_id, used FROM guide_counts WHERE day = $1 AND used > 0 \
                 ORDER BY guide_id",
                &[&day.0],
            )
            .await
        }))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), count(r.get(1))))
            .collect())
    }

    /// `FOR UPDATE SKIP LOCKED`: of several sweepers each takes other rows, and a lease taken
    /// is seen by the next sweeper only after it lapses.
    fn claim_due_offers(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(self.transact(false, async |c| {
            let rows = query(
                c,
                "UPDATE decisions SET lease_until = $2 WHERE lead_id IN ( \
                       SELECT lead_id FROM decisions \
                       WHERE offer_expires_at <= $1 \
                         AND (lease_until IS NULL OR lease_until <= $1) \
                       ORDER BY offer_expires_at, lead_id LIMIT $3 \
                       FOR UPDATE SKIP LOCKED) \
                     RETURNING lead_id, record, offer_expires_at",
                &[&now_ms, &lease_until_ms, &limit],
            )
            .await?;
            Ok(Step::Commit(rows))
        }))?;
        let mut out: Vec<(i64, Arc<Decision>)> = rows
            .iter()
            .map(|r| Ok((r.get::<_, i64>(2), decode(r)?)))
            .collect::<Result<_, StorageError>>()?;
        out.sort_by(|a, b| (a.0, &a.1.lead.lead_id).cmp(&(b.0, &b.1.lead.lead_id)));
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    fn open_offer_count(&self) -> Result<usize, StorageError> {
        let row = self.run(self.read(async |c| {
            query_one(
                c,
                "SELECT count(*) FROM decisions WHERE offer_expires_at IS NOT NULL",
                &[],
            )
            .await
        }))?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn decision_count(&self) -> Result<u64, StorageError> {
        let row = self
            .run(self.read(async |c| query_one(c, "SELECT count(*) FROM decisions", &[]).await))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// In pages of 1,000 by lead id.
    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StorageError> {
        let mut after = String::new();
        let mut first = true;
        loop {
            let rows = self.run(self.read(async |c| {
                query(
                    c,
                    "SELECT lead_id, record FROM decisions WHERE $2 OR lead_id > $1 \
                     ORDER BY lead_id LIMIT 1000",
                    &[&after, &first],
                )
                .await
            }))?;
            first = false;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.get(0);
            for r in &rows {
                if !f(decode(r)?) {
                    return Ok(());
                }
            }
        }
    }
}
