use super::trails::{AppendRows, HeadWrite};
use super::{PostgresStore, Step, corrupt, pg_error, query, query_one, query_opt};
use crate::domain::{Day, Decision};
use crate::storage::RouteState;
use crate::storage::{Committed, Decisions, RouteCommit, StorageError, codec, open_offer};
use std::sync::Arc;
use tokio_postgres::Row;

const COUNT: &str = "SELECT used FROM guide_counts WHERE day = $1 AND guide_id = $2";

/// A stored decision from `(lead_id, record)` columns.
fn decode(row: &Row) -> Result<Arc<Decision>, StorageError> {
    decode_record(row.get(0), row.get(1))
}

fn decode_record(lead: &str, bytes: &[u8]) -> Result<Arc<Decision>, StorageError> {
    codec::decode_decision(bytes)
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
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT lead_id, record FROM decisions WHERE lead_id = $1",
            &[&lead_id],
        )
        .await
        .map_err(pg_error)?;
        row.as_ref().map(decode).transpose()
    }

    async fn guide_count_async(&self, guide_id: &str, day: Day) -> Result<u32, StorageError> {
        let client = self.client().await?;
        let row = query_opt(&client, COUNT, &[&day.0, &guide_id])
            .await
            .map_err(pg_error)?;
        Ok(row.map_or(0, |r| count(r.get(0))))
    }

    /// One statement (`leadrouter_route_v7`, migrations 5 and 7): the lead checked new and the
    /// member's head checked at the one named (returning what they are instead where not), then
    /// the decision's write with its desk columns, the capacity taken and given back (in key
    /// order, so that two commits never wait on each other's counts), the member's head moved,
    /// the events and the offer notices; a refusal writes nothing.
    async fn commit_route_io(&self, c: &RouteCommit<'_>) -> Result<Committed, StorageError> {
        c.check()?;
        let d = c.decision;
        let record = codec::encode_decision(d);
        let expires = open_offer(d).map(|(at, _)| at);
        let version = i32::try_from(d.version).unwrap_or(i32::MAX);
        let replaces = c.replaces.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        let lead = d.lead.lead_id.as_str();
        // The counts touched, in key order: a capacity takes, none gives back.
        let mut counts: Vec<(i32, &str, Option<i32>)> = Vec::new();
        if let Some(t) = c.take {
            counts.push((t.day.0, t.guide_id, Some(capacity(t.capacity))));
        }
        let same = c
            .take
            .zip(c.release)
            .and_then(|(t, (g, day))| (t.guide_id == g && t.day == day).then_some((day.0, g)));
        if let Some((g, day)) = c.release
            && same.is_none()
        {
            counts.push((day.0, g, None));
        }
        counts.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let count_days: Vec<i32> = counts.iter().map(|c| c.0).collect();
        let count_guides: Vec<&str> = counts.iter().map(|c| c.1).collect();
        let count_caps: Vec<Option<i32>> = counts.iter().map(|c| c.2).collect();
        let (give_back_day, give_back_guide) = (same.map(|s| s.0), same.map(|s| s.1));
        let (at_member, at_seq) = c.head.map_or((None, None), |at| {
            (
                Some(at.member_id),
                Some(i64::try_from(at.seq).unwrap_or(i64::MAX)),
            )
        });
        let head = HeadWrite::of(c.events);
        let rows = AppendRows::of(c.events);
        let member = head.as_ref().map(|h| h.member);
        let (expected, head_seq, head_hash) = head.as_ref().map_or((None, None, None), |h| {
            (Some(h.expected), Some(h.seq), Some(h.hash))
        });
        let empty = AppendRows::empty();
        let r = rows.as_ref().unwrap_or(&empty);
        let asynchronous = !self.synchronous_commit;
        let (guide, queue) = crate::storage::desk_of(d);
        let guide = guide.map(|(g, _)| g);
        let n_guides: Vec<&str> = c.notices.iter().map(|n| n.guide_id.as_str()).collect();
        let n_stores: Vec<&str> = c.notices.iter().map(|n| n.store_id.as_str()).collect();
        let n_at: Vec<i64> = c.notices.iter().map(|n| n.at_ms).collect();
        let n_bodies: Vec<String> = c.notices.iter().map(|n| n.to_body()).collect();
        let outcome = self
            .statement_send(
                "SELECT outcome, used, record, head_seq, head_hash, binding_line \
                 FROM leadrouter_route_v7($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, \
                 $28, $29, $30)",
                &[
                    &lead,
                    &version,
                    &replaces,
                    &d.day.0,
                    &expires,
                    &record,
                    &count_days,
                    &count_guides,
                    &count_caps,
                    &give_back_day,
                    &give_back_guide,
                    &at_member,
                    &at_seq,
                    &member,
                    &expected,
                    &head_seq,
                    &head_hash,
                    &r.seqs,
                    &r.lines,
                    &r.occurred,
                    &r.bound,
                    &r.bindings,
                    &asynchronous,
                    &guide,
                    &queue,
                    &d.decided_at_ms,
                    &n_guides,
                    &n_stores,
                    &n_at,
                    &n_bodies,
                ],
            )
            .await?;
        let row = match outcome {
            Ok(row) => row,
            Err(code) => return self.refused(c, &code).await,
        };
        match row.get::<_, i32>(0) {
            0 => {
                self.seen.appended(c.events);
                Ok(Committed::Stored {
                    used: row.get::<_, Option<i32>>(1).map(count),
                })
            }
            1 => Ok(Committed::Replayed(decode_record(lead, row.get(2))?)),
            4 => {
                let at = c.head.expect("a head is checked only where named");
                let state = state_of(at.member_id, None, &row, 3)?;
                self.seen
                    .saw(at.member_id, state.head.as_ref(), state.binding.as_ref());
                Ok(Committed::HeadMoved(Some(Box::new(state))))
            }
            other => Err(StorageError::Backend(format!(
                "postgres: a route's commit returned outcome {other}"
            ))),
        }
    }

    /// What a refusal raised (`code`, migration 2) means, read where the caller needs it.
    async fn refused(&self, c: &RouteCommit<'_>, code: &str) -> Result<Committed, StorageError> {
        let lead = c.decision.lead.lead_id.as_str();
        match code {
            "LR001" => match self.decision_async(lead).await? {
                Some(s) => Ok(Committed::Replayed(s)),
                None => Err(StorageError::Contended(format!(
                    "lead {lead:?} was being stored by another writer that gave up"
                ))),
            },
            "LR002" => Ok(Committed::Moved(self.decision_async(lead).await?)),
            "LR003" => {
                let t = c.take.expect("full only when taking");
                Ok(Committed::Full {
                    used: self.guide_count_async(t.guide_id, t.day).await?,
                })
            }
            "LR004" => Ok(Committed::HeadMoved(None)),
            code => Err(StorageError::Backend(format!(
                "postgres: a route's commit raised {code}"
            ))),
        }
    }

    /// The lead's decision and the member's head and latest binding, in one statement
    /// (`leadrouter_route_state`, migration 2), as of one snapshot.
    pub(super) async fn route_state_io(
        &self,
        lead_id: &str,
        member_id: Option<&str>,
    ) -> Result<RouteState, StorageError> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT record, head_seq, head_hash, binding_line \
             FROM leadrouter_route_state($1, $2)",
            &[&lead_id, &member_id],
        )
        .await
        .map_err(pg_error)?;
        let decision = row
            .get::<_, Option<&[u8]>>(0)
            .map(|bytes| decode_record(lead_id, bytes))
            .transpose()?;
        if decision.is_some() {
            return Ok(RouteState {
                decision,
                ..Default::default()
            });
        }
        let Some(m) = member_id else {
            return Ok(RouteState::default());
        };
        let state = state_of(m, None, &row, 1)?;
        self.seen
            .saw(m, state.head.as_ref(), state.binding.as_ref());
        Ok(state)
    }
}

/// A member's head and latest binding from the columns `(head_seq, head_hash, binding_line)`
/// starting at `at`.
fn state_of(
    member_id: &str,
    decision: Option<Arc<Decision>>,
    row: &Row,
    at: usize,
) -> Result<RouteState, StorageError> {
    let head = row.get::<_, Option<i64>>(at).map(|seq| {
        (
            u64::try_from(seq).unwrap_or(0),
            row.get::<_, String>(at + 1),
        )
    });
    let binding = row
        .get::<_, Option<&str>>(at + 2)
        .map(|line| {
            crate::domain::trail::TrailEvent::from_line(line)
                .map_err(|why| corrupt(format!("the latest binding of {member_id}"), why))
        })
        .transpose()?;
    Ok(RouteState {
        decision,
        head,
        binding,
    })
}

impl Decisions for PostgresStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        self.run(self.decision_async(lead_id))
    }

    fn commit_route(&self, commit: &RouteCommit<'_>) -> Result<Committed, StorageError> {
        self.run(self.commit_route_io(commit))
    }

    fn commit_route_async<'a>(
        &'a self,
        commit: &'a RouteCommit<'a>,
    ) -> crate::storage::Pending<'a, Committed> {
        self.pending(self.commit_route_io(commit))
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
            // Two statements, so that each page is an index range (a generic plan of
            // `$first OR lead_id > $after` would scan from the start every page).
            let rows = self.run(self.read(async |c| {
                if first {
                    query(
                        c,
                        "SELECT lead_id, record FROM decisions ORDER BY lead_id LIMIT 1000",
                        &[],
                    )
                    .await
                } else {
                    query(
                        c,
                        "SELECT lead_id, record FROM decisions WHERE lead_id > $1 \
                         ORDER BY lead_id LIMIT 1000",
                        &[&after],
                    )
                    .await
                }
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
