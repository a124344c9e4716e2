//! Building appends: a [`Chain`] links new events onto the head a writer read, and
//! [`append_retrying`] builds and appends again while other writers move the head first. No lock
//! is held: the storage's conditional append is the guarantee (DESIGN §6).

use super::{Append, Appended, Storage, StorageError, TrailKey};
use crate::domain::trail::{EventBody, TrailEvent};

/// Attempts before an append gives up on a member whose head keeps moving.
pub const MAX_ATTEMPTS: usize = 64;

/// New events for one member, chained onto the head read.
#[derive(Debug, Clone)]
pub struct Chain<'k> {
    member_id: String,
    head: Option<(u64, String)>,
    appends: Vec<Append<'k>>,
}

impl<'k> Chain<'k> {
    /// A chain onto `head`, the member's last `(seq, hash)` as read (`None`: no events yet).
    pub fn new(member_id: &str, head: Option<(u64, String)>) -> Self {
        Self {
            member_id: member_id.to_string(),
            head,
            appends: Vec::new(),
        }
    }

    /// Reads the member's head from `storage` and starts a chain on it.
    pub fn at_head(storage: &dyn Storage, member_id: &str) -> Result<Self, StorageError> {
        Ok(Self::new(member_id, storage.trail_head(member_id)?))
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The seq of the head the chain was started on (0: the member had no events).
    pub fn base_seq(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.0)
    }

    /// The head the next event chains onto: the last pushed event, else the head read.
    pub fn head(&self) -> Option<(u64, &str)> {
        match self.appends.last() {
            Some(a) => Some((a.event.seq, a.event.hash.as_str())),
            None => self.head.as_ref().map(|(s, h)| (*s, h.as_str())),
        }
    }

    /// Adds the next event and returns it.
    pub fn push(
        &mut self,
        occurred_at_ms: i64,
        recorded_at_ms: i64,
        body: EventBody,
        key: Option<TrailKey<'k>>,
    ) -> &TrailEvent {
        let (event, line) = TrailEvent::next_with_line(
            &self.member_id,
            self.head(),
            occurred_at_ms,
            recorded_at_ms,
            body,
        );
        self.appends.push(Append { event, line, key });
        &self.appends.last().expect("just pushed").event
    }

    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
    }

    pub fn appends(&self) -> &[Append<'k>] {
        &self.appends
    }

    pub fn events(&self) -> impl Iterator<Item = &TrailEvent> {
        self.appends.iter().map(|a| &a.event)
    }

    pub fn into_events(self) -> Vec<TrailEvent> {
        self.appends.into_iter().map(|a| a.event).collect()
    }
}

/// What [`append_retrying`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The chain's events, stored.
    Stored(Vec<TrailEvent>),
    /// A key was taken already, by this event.
    Replayed(Box<TrailEvent>),
    /// `build` had nothing to append.
    Nothing,
}

/// Appends the chain `build` makes (from a head it reads itself), building again each time the
/// head moved first, at most [`MAX_ATTEMPTS`] times ([`StorageError::Contended`] after that).
pub fn append_retrying<'k, E: From<StorageError>>(
    storage: &dyn Storage,
    mut build: impl FnMut() -> Result<Option<Chain<'k>>, E>,
) -> Result<Written, E> {
    for attempt in 0..MAX_ATTEMPTS {
        let Some(chain) = build()? else {
            return Ok(Written::Nothing);
        };
        if chain.is_empty() {
            return Ok(Written::Nothing);
        }
        match storage.append_events(chain.appends())? {
            Appended::Stored => return Ok(Written::Stored(chain.into_events())),
            Appended::Replayed(e) => return Ok(Written::Replayed(e)),
            Appended::HeadMoved => backoff(attempt),
        }
    }
    Err(StorageError::Contended(format!(
        "member trail: the head moved {MAX_ATTEMPTS} times while appending; retry"
    ))
    .into())
}

/// A short pause that grows with the attempt, so that writers racing on one member spread out.
pub fn backoff(attempt: usize) {
    if attempt > 2 {
        std::thread::sleep(std::time::Duration::from_micros(
            50 << attempt.min(8) as u64,
        ));
    } else {
        std::thread::yield_now();
    }
}
