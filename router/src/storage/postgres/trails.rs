use super::{Conn, PostgresStore, Step, corrupt, query, query_opt};
use crate::domain::trail::{EventBody, TrailEvent};
use crate::storage::{Append, Appended, LedgerCursor, StorageError, TrailKey, Trails, check_chain};
use tokio_postgres::{Row, Statement};

const INSERT_HEAD: &str = "INSERT INTO trail_heads (member_id, seq, hash) VALUES ($1, $2, $3) \
     ON CONFLICT (member_id) DO NOTHING RETURNING seq";
const MOVE_HEAD: &str = "UPDATE trail_heads SET seq = $2, hash = $3 \
     WHERE member_id = $1 AND seq = $4 RETURNING seq";
const INSERT_EVENTS: &str = "INSERT INTO trail_events (member_id, seq, line, occurred_at, \
     ledger_tag, ledger_id, follows_order, bound_guide, is_binding) \
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::bool[])";
const INSERT_KEYS: &str = "INSERT INTO trail_keys (tag, id, member_id, seq) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
     ON CONFLICT (tag, id) DO NOTHING RETURNING tag";

/// Moves a member's head from the one the first event chains onto to the last event: the
/// condition that makes `(member, seq)` a chain with one writer at each step.
pub(super) struct HeadWrite<'a> {
    member: &'a str,
    expected: i64,
    seq: i64,
    hash: &'a str,
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

    pub(super) async fn prepare(&self, c: &Conn) -> Result<Statement, tokio_postgres::Error> {
        c.prepare_cached(if self.expected == 0 {
            INSERT_HEAD
        } else {
            MOVE_HEAD
        })
        .await
    }

    /// Whether the head was where the events chain on (and has moved).
    pub(super) async fn write(
        &self,
        c: &Conn,
        s: &Statement,
    ) -> Result<bool, tokio_postgres::Error> {
        let row = if self.expected == 0 {
            c.query_opt(s, &[&self.member, &self.seq, &self.hash])
                .await?
        } else {
            c.query_opt(s, &[&self.member, &self.seq, &self.hash, &self.expected])
                .await?
        };
        Ok(row.is_some())
    }
}

fn seq_of(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// One member's events as columns, for one `INSERT … SELECT unnest(…)`.
pub(super) struct AppendRows {
    members: Vec<String>,
    seqs: Vec<i64>,
    lines: Vec<String>,
    occurred: Vec<i64>,
    ledger_tags: Vec<Option<String>>,
    ledger_ids: Vec<Option<String>>,
    follows: Vec<Option<String>>,
    bound: Vec<Option<String>>,
    bindings: Vec<bool>,
}

impl AppendRows {
    pub(super) fn of(events: &[Append<'_>]) -> Option<Self> {
        events.first()?;
        let mut r = Self {
            members: Vec::with_capacity(events.len()),
            seqs: Vec::with_capacity(events.len()),
            lines: Vec::with_capacity(events.len()),
            occurred: Vec::with_capacity(events.len()),
            ledger_tags: Vec::with_capacity(events.len()),
            ledger_ids: Vec::with_capacity(events.len()),
            follows: Vec::with_capacity(events.len()),
            bound: Vec::with_capacity(events.len()),
            bindings: Vec::with_capacity(events.len()),
        };
        for a in events {
            let e = &a.event;
            let cursor = LedgerCursor::of(e);
            r.members.push(e.member_id.clone());
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

    pub(super) async fn prepare(&self, c: &Conn) -> Result<Statement, tokio_postgres::Error> {
        c.prepare_cached(INSERT_EVENTS).await
    }

    pub(super) async fn insert(
        &self,
        c: &Conn,
        s: &Statement,
    ) -> Result<(), tokio_postgres::Error> {
        c.execute(
            s,
            &[
                &self.members,
                &self.seqs,
                &self.lines,
                &self.occurred,
                &self.ledger_tags,
                &self.ledger_ids,
                &self.follows,
                &self.bound,
                &self.bindings,
            ],
        )
        .await
        .map(|_| ())
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

    /// The head moved from the one read, the events and their keys inserted: one transaction,
    /// its statements sent at once. Orders, refunds and adjustments commit synchronously.
    async fn append_async(&self, events: &[Append<'_>]) -> Result<Appended, StorageError> {
        check_chain(events)?;
        let (Some(head), Some(rows)) = (HeadWrite::of(events), AppendRows::of(events)) else {
            return Ok(Appended::Stored);
        };
        let keys: Vec<(String, String)> = events
            .iter()
            .filter_map(|a| a.key.map(key_columns))
            .collect();
        let (tags, ids): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
        let key_members: Vec<&str> = events
            .iter()
            .filter(|a| a.key.is_some())
            .map(|a| a.event.member_id.as_str())
            .collect();
        let key_seqs: Vec<i64> = events
            .iter()
            .filter(|a| a.key.is_some())
            .map(|a| seq_of(a.event.seq))
            .collect();
        let durable = events
            .iter()
            .any(|a| !matches!(a.key, None | Some(TrailKey::Touch(_))));
        let outcome = self
            .transact(durable, async |c| {
                let head_s = head.prepare(c).await?;
                let rows_s = rows.prepare(c).await?;
                let keys_s = c.prepare_cached(INSERT_KEYS).await?;
                let keys_written = async {
                    if tags.is_empty() {
                        return Ok(0);
                    }
                    c.query(&keys_s, &[&tags, &ids, &key_members, &key_seqs])
                        .await
                        .map(|r| r.len())
                };
                let (moved, inserted, keys_written) = tokio::join!(
                    head.write(c, &head_s),
                    rows.insert(c, &rows_s),
                    keys_written
                );
                if !moved? {
                    return Ok(Step::Rollback(Some(false)));
                }
                inserted?;
                if keys_written? < tags.len() {
                    return Ok(Step::Rollback(Some(true)));
                }
                Ok(Step::Commit(None))
            })
            .await?;
        match outcome {
            None => Ok(Appended::Stored),
            Some(false) => Ok(Appended::HeadMoved),
            Some(true) => {
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
            let rows = self.run(self.read(async |c| {
                query(
                    c,
                    "SELECT member_id, seq, line FROM trail_events \
                     WHERE $3 OR (member_id, seq) > ($1, $2) ORDER BY member_id, seq LIMIT 1000",
                    &[&member, &seq, &first],
                )
                .await
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
