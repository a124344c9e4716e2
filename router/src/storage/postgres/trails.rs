use super::{PostgresStore, corrupt, query, query_opt};
use crate::domain::trail::{EventBody, TrailEvent};
use crate::storage::{Append, Appended, LedgerCursor, StorageError, TrailKey, Trails, check_chain};
use tokio_postgres::Row;

/// Moves a member's head from the one the first event chains onto to the last event: the
/// condition that makes `(member, seq)` a chain with one writer at each step.
pub(super) struct HeadWrite<'a> {
    pub(super) member: &'a str,
    /// The head the first event chains onto (0: the member has no events).
    pub(super) expected: i64,
    pub(super) seq: i64,
    pub(super) hash: &'a str,
}

impl<'a> HeadWrite<'a> {
    pub(super) fn of(events: &'a [Append<'_>]) -> Option<Self> {
        let (first, last) = (events.first()?, events.last()?);
        Some(Self {
            member: &first.event.member_id,
            expected: seq_of(first.event.seq) - 1,
            seq: seq_of(last.event.seq),
            hash: &last.event.hash,
        })
    }
}

fn seq_of(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// One member's events as columns, for `unnest(…)`.
#[derive(Default)]
pub(super) struct AppendRows {
    pub(super) seqs: Vec<i64>,
    pub(super) lines: Vec<String>,
    pub(super) occurred: Vec<i64>,
    pub(super) ledger_tags: Vec<Option<String>>,
    pub(super) ledger_ids: Vec<Option<String>>,
    pub(super) follows: Vec<Option<String>>,
    pub(super) bound: Vec<Option<String>>,
    pub(super) bindings: Vec<bool>,
}

impl AppendRows {
    pub(super) fn empty() -> Self {
        Self::default()
    }

    pub(super) fn of(events: &[Append<'_>]) -> Option<Self> {
        events.first()?;
        let mut r = Self::default();
        for a in events {
            let e = &a.event;
            let cursor = LedgerCursor::of(e);
            r.seqs.push(seq_of(e.seq));
            r.lines.push(a.line.clone());
            r.occurred.push(e.occurred_at_ms);
            r.ledger_tags
                .push(cursor.as_ref().map(|c| char::from(c.tag).to_string()));
            r.ledger_ids.push(cursor.map(|c| c.id));
            r.follows.push(match &e.body {
                EventBody::Refund(x) => Some(x.order_id.clone()),
                EventBody::Adjustment(x) => Some(x.order_id.clone()),
                _ => None,
            });
            r.bound
                .push(e.binding().map(|b| b.state.guide_id.to_string()));
            r.bindings.push(e.binding().is_some());
        }
        Some(r)
    }
}

fn key_columns(k: TrailKey<'_>) -> (String, String) {
    let (tag, id) = k.tag();
    (char::from(tag).to_string(), id.to_string())
}

fn decode(row: &Row) -> Result<TrailEvent, StorageError> {
    let line: &str = row.get("line");
    TrailEvent::from_line(line).map_err(|why| {
        let member: &str = row.try_get("member_id").unwrap_or("?");
        let seq: i64 = row.try_get("seq").unwrap_or(0);
        corrupt(format!("trail event {member}/{seq}"), why)
    })
}

fn decode_all(rows: &[Row]) -> Result<Vec<TrailEvent>, StorageError> {
    rows.iter().map(decode).collect()
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PostgresStore {
    async fn trail_event_async(
        &self,
        key: TrailKey<'_>,
    ) -> Result<Option<TrailEvent>, StorageError> {
        let (tag, id) = key_columns(key);
        let row = self
            .read(async |c| {
                query_opt(
                    c,
                    "SELECT e.member_id, e.seq, e.line FROM trail_keys k \
                     JOIN trail_events e ON e.member_id = k.member_id AND e.seq = k.seq \
                     WHERE k.tag = $1 AND k.id = $2",
                    &[&tag, &id],
                )
                .await
            })
            .await?;
        Ok(row
            .as_ref()
            .map(decode)
            .transpose()?
            .filter(|e| key.matches(e)))
    }

    /// One statement (`leadrouter_append`, migration 2): the head moved from the one read,
    /// the events and their keys inserted, or a refusal and nothing written. Orders, refunds
    /// and adjustments commit synchronously.
    async fn append_async(&self, events: &[Append<'_>]) -> Result<Appended, StorageError> {
        check_chain(events)?;
        let (Some(head), Some(rows)) = (HeadWrite::of(events), AppendRows::of(events)) else {
            return Ok(Appended::Stored);
        };
        let keyed: Vec<(String, String, i64)> = events
            .iter()
            .filter_map(|a| {
                a.key.map(|k| {
                    let (tag, id) = key_columns(k);
                    (tag, id, seq_of(a.event.seq))
                })
            })
            .collect();
        let tags: Vec<&str> = keyed.iter().map(|k| k.0.as_str()).collect();
        let ids: Vec<&str> = keyed.iter().map(|k| k.1.as_str()).collect();
        let key_seqs: Vec<i64> = keyed.iter().map(|k| k.2).collect();
        let asynchronous = !self.synchronous_commit
            && events
                .iter()
                .all(|a| matches!(a.key, None | Some(TrailKey::Touch(_))));
        let outcome = self
            .statement(async |c| {
                let sql = if asynchronous {
                    "SELECT set_config('synchronous_commit', 'off', true), \
                     leadrouter_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                } else {
                    "SELECT leadrouter_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15)"
                };
                let s = c.prepare_cached(sql).await?;
                c.query_one(
                    &s,
                    &[
                        &head.member,
                        &head.expected,
                        &head.seq,
                        &head.hash,
                        &rows.seqs,
                        &rows.lines,
                        &rows.occurred,
                        &rows.ledger_tags,
                        &rows.ledger_ids,
                        &rows.follows,
                        &rows.bound,
                        &rows.bindings,
                        &tags,
                        &ids,
                        &key_seqs,
                    ],
                )
                .await
                .map(|_| ())
            })
            .await?;
        match outcome.as_ref().map_err(String::as_str) {
            Ok(()) => {
                self.seen.appended(events);
                Ok(Appended::Stored)
            }
            Err("LR004") => Ok(Appended::HeadMoved),
            Err("LR005") => {
                for a in events {
                    if let Some(k) = a.key
                        && let Some(e) = self.trail_event_async(k).await?
                    {
                        return Ok(Appended::Replayed(Box::new(e)));
                    }
                }
                Err(StorageError::Contended(
                    "an event's id was being recorded by another writer that gave up".into(),
                ))
            }
            Err(code) => Err(StorageError::Backend(format!(
                "postgres: an append raised {code}"
            ))),
        }
    }

    fn lines(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let rows = self.run(self.read(async |c| query(c, sql, params).await))?;
        decode_all(&rows)
    }

    /// Every event in `(member, seq)` order, in pages of 1,000; `bad` takes what cannot be
    /// read and says whether to go on.
    fn scan(
        &self,
        f: &mut dyn FnMut(TrailEvent) -> bool,
        bad: &mut dyn FnMut(StorageError) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let (mut member, mut seq, mut first) = (String::new(), 0i64, true);
        loop {
            // Two statements, so that each page is an index range (see `scan_decisions`).
            let rows = self.run(self.read(async |c| {
                if first {
                    query(
                        c,
                        "SELECT member_id, seq, line FROM trail_events \
                         ORDER BY member_id, seq LIMIT 1000",
                        &[],
                    )
                    .await
                } else {
                    query(
                        c,
                        "SELECT member_id, seq, line FROM trail_events \
                         WHERE (member_id, seq) > ($1, $2) ORDER BY member_id, seq LIMIT 1000",
                        &[&member, &seq],
                    )
                    .await
                }
            }))?;
            first = false;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            member = last.get("member_id");
            seq = last.get("seq");
            for r in &rows {
                match decode(r) {
                    Ok(e) => {
                        if !f(e) {
                            return Ok(());
                        }
                    }
                    Err(e) => bad(e)?,
                }
            }
        }
    }
}

impl Trails for PostgresStore {
    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StorageError> {
        let row = self.run(self.read(async |c| {
            query_opt(
                c,
                "SELECT seq, hash FROM trail_heads WHERE member_id = $1",
                &[&member_id],
            )
            .await
        }))?;
        Ok(row.map(|r| (u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), r.get(1))))
    }

    fn trail_from(
        &self,
        member_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        self.lines(
            "SELECT member_id, seq, line FROM trail_events WHERE member_id = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
            &[&member_id, &seq_of(from_seq), &limit_of(limit)],
        )
    }

    fn trail_before(
        &self,
        member_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        self.lines(
            "SELECT member_id, seq, line FROM trail_events WHERE member_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3",
            &[&member_id, &seq_of(before_seq), &limit_of(limit)],
        )
    }

    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StorageError> {
        self.run(self.trail_event_async(key))
    }

    fn append_events(&self, events: &[Append<'_>]) -> Result<Appended, StorageError> {
        self.run(self.append_async(events))
    }

    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        match after {
            None => self.lines(
                "SELECT member_id, seq, line FROM trail_events WHERE ledger_tag IS NOT NULL \
                 AND occurred_at >= $1 AND occurred_at < $2 \
                 ORDER BY occurred_at, ledger_tag, ledger_id LIMIT $3",
                &[&from_ms, &to_ms, &limit_of(limit)],
            ),
            Some(a) => {
                let tag = char::from(a.tag).to_string();
                self.lines(
                    "SELECT member_id, seq, line FROM trail_events WHERE ledger_tag IS NOT NULL \
                     AND occurred_at >= $1 AND occurred_at < $2 \
                     AND (occurred_at, ledger_tag, ledger_id) > ($4, $5, $6) \
                     ORDER BY occurred_at, ledger_tag, ledger_id LIMIT $3",
                    &[
                        &from_ms,
                        &to_ms,
                        &limit_of(limit),
                        &a.occurred_at_ms,
                        &tag,
                        &a.id,
                    ],
                )
            }
        }
    }

    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StorageError> {
        self.lines(
            "SELECT member_id, seq, line FROM trail_events WHERE follows_order = $1 \
             ORDER BY member_id, seq",
            &[&order_id],
        )
    }

    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StorageError> {
        Ok(self
            .lines(
                "SELECT member_id, seq, line FROM trail_events WHERE member_id = $1 AND is_binding \
                 ORDER BY seq DESC LIMIT 1",
                &[&member_id],
            )?
            .pop())
    }

    fn members_of(
        &self,
        guide_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let after = after.unwrap_or("");
        let rows = self.run(self.read(async |c| {
            query(
                c,
                "SELECT DISTINCT member_id FROM trail_events WHERE bound_guide = $1 \
                 AND member_id > $2 ORDER BY member_id LIMIT $3",
                &[&guide_id, &after, &limit_of(limit)],
            )
            .await
        }))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StorageError> {
        self.scan(f, &mut |e| Err(e))
    }

    fn scan_trails_lossy(
        &self,
        f: &mut dyn FnMut(TrailEvent) -> bool,
        damaged: &mut dyn FnMut(StorageError),
    ) -> Result<(), StorageError> {
        self.scan(f, &mut |e| {
            damaged(e);
            Ok(())
        })
    }
}
