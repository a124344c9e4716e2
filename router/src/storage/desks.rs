//! The guides' side of storage, one part of the contract: which leads sit on a guide's desk
//! for a day, which wait in a store's queue, and the notices of what happened to offers, in one
//! order that every reader on every replica sees and can resume from.
//!
//! Desks are read from the decisions themselves (a backend's index only finds candidates; what
//! is listed is what the stored decision says now). Notices are written with the decision they
//! announce, in the same step of [`super::Decisions::commit_route`], or not at all.

use super::StorageError;
use crate::domain::offer::OfferStatus;
use crate::domain::{Day, Decision};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What happened to an offer, as its guide's and its store's apps are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Offered to the notice's guide until `expires_at_ms`.
    Offered,
    /// Accepted by the notice's guide.
    Accepted,
    /// The offer left the notice's guide (declined or not answered in time).
    Left,
    /// Nobody accepted: the lead waits in the notice's store's queue.
    Queued,
    /// Taken from the store's queue by the notice's guide.
    Claimed,
    /// Nobody accepted and no queue takes it: unrouted.
    Unrouted,
}

impl NoticeKind {
    pub const ALL: [Self; 6] = [
        Self::Offered,
        Self::Accepted,
        Self::Left,
        Self::Queued,
        Self::Claimed,
        Self::Unrouted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Accepted => "accepted",
            Self::Left => "left",
            Self::Queued => "queued",
            Self::Claimed => "claimed",
            Self::Unrouted => "unrouted",
        }
    }
}

/// A notice's place in the one order readers see, compared as a pair. The in-process
/// backends number notices 1, 2, … (`NoticeId(0, n)`); PostgreSQL uses (writing transaction,
/// sequence) and shows a notice only once every older transaction has ended, so that no notice
/// ever appears before one a reader has already passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct NoticeId(pub u64, pub u64);

impl std::fmt::Display for NoticeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

impl std::str::FromStr for NoticeId {
    type Err = String;

    /// The form [`NoticeId`] displays: `<u64>-<u64>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("must be an event id as the stream sent it (e.g. 0-42), got {s:?}");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self(
            a.parse().map_err(|_| bad())?,
            b.parse().map_err(|_| bad())?,
        ))
    }
}

/// One notice of what happened to an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferNotice {
    /// Where it stands; given by the store when written (what a writer sets is ignored).
    #[serde(skip)]
    pub id: NoticeId,
    pub kind: NoticeKind,
    pub lead_id: String,
    pub decision_id: String,
    /// The decision's version after the change.
    pub version: u32,
    /// The guide it is about: the holder, the one it left, or the claimant (empty when queued
    /// or unrouted).
    pub guide_id: String,
    /// The guide's store, or the queue's (empty when unrouted).
    pub store_id: String,
    /// For `offered`: when it lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// When it happened (Unix ms).
    pub at_ms: i64,
}

impl OfferNotice {
    /// The stored body (JSON; the id is the store's key).
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_body(id: NoticeId, body: &str) -> Result<Self, StorageError> {
        let mut n: Self = serde_json::from_str(body).map_err(|e| StorageError::Corrupt {
            key: format!("notice {id}"),
            why: e.to_string(),
        })?;
        n.id = id;
        Ok(n)
    }

    /// Whether a reader of `of` is told of it.
    pub fn is_for(&self, of: NoticesOf<'_>) -> bool {
        match of {
            NoticesOf::All => true,
            NoticesOf::Guide(g) => self.guide_id == g,
            NoticesOf::Store(s) => self.store_id == s,
        }
    }

    /// The notices a decision's new version `d` gives, at `at_ms`: what it now is, and where
    /// the offer left a guide, that it left them (`left`: that guide and their store).
    pub fn of(d: &Decision, left: Option<(&str, &str)>, at_ms: i64) -> Vec<Self> {
        let Some(offer) = &d.offer else {
            return vec![];
        };
        let notice = |kind, guide: &str, store: &str| Self {
            id: NoticeId::default(),
            kind,
            lead_id: d.lead.lead_id.clone(),
            decision_id: d.decision_id.clone(),
            version: d.version,
            guide_id: guide.to_string(),
            store_id: store.to_string(),
            expires_at_ms: (kind == NoticeKind::Offered).then_some(offer.expires_at_ms),
            at_ms,
        };
        let mut out = Vec::with_capacity(2);
        if let Some((guide, store)) = left {
            out.push(notice(NoticeKind::Left, guide, store));
        }
        let (store, guide) = d.assigned.as_ref().map_or(("", ""), |(s, g)| (&**s, &**g));
        out.push(match offer.status {
            OfferStatus::Open => notice(NoticeKind::Offered, guide, store),
            OfferStatus::Accepted => notice(NoticeKind::Accepted, guide, store),
            OfferStatus::Claimed => notice(NoticeKind::Claimed, guide, store),
            OfferStatus::Exhausted => match &offer.queued_store_id {
                Some(queue) => notice(NoticeKind::Queued, "", queue),
                None => notice(NoticeKind::Unrouted, "", ""),
            },
        });
        out
    }
}

/// Whose notices a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticesOf<'a> {
    All,
    Guide(&'a str),
    Store(&'a str),
}

/// Where a decision sits: the guide whose leads of a business day list it, and the store whose
/// queue holds it (a lead whose offers all failed, not yet claimed).
pub fn desk_of(d: &Decision) -> (Option<(&str, Day)>, Option<&str>) {
    let guide = d.guide_id().map(|g| (g, d.day));
    let queue = d
        .offer
        .as_ref()
        .filter(|o| o.status == OfferStatus::Exhausted)
        .and_then(|o| o.queued_store_id.as_deref());
    (guide, queue)
}

/// Whether `d`, as stored now, is on `guide_id`'s desk for `day`.
pub fn on_guide_desk(d: &Decision, guide_id: &str, day: Day) -> bool {
    desk_of(d).0 == Some((guide_id, day))
}

/// Whether `d`, as stored now, waits in `store_id`'s queue.
pub fn in_store_queue(d: &Decision, store_id: &str) -> bool {
    desk_of(d).1 == Some(store_id)
}

/// Sorts a desk or queue as it is shown: oldest decision first, then by lead id.
pub fn by_time(list: &mut [Arc<Decision>]) {
    list.sort_by(|a, b| {
        (a.decided_at_ms, &a.lead.lead_id).cmp(&(b.decided_at_ms, &b.lead.lead_id))
    });
}

/// How long notices are kept for a stream to resume from.
pub const NOTICE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Desks, queues and notices: one part of the storage contract.
pub trait Desks: Send + Sync {
    /// Every decision whose guide is `guide_id` on business day `day` (routed, offered,
    /// accepted or claimed), oldest first.
    fn guide_leads(&self, guide_id: &str, day: Day) -> Result<Vec<Arc<Decision>>, StorageError>;

    /// The leads waiting in `store_id`'s queue, oldest first, at most `limit`.
    fn store_queue(&self, store_id: &str, limit: usize)
    -> Result<Vec<Arc<Decision>>, StorageError>;

    /// The notices for `of` after `after`, in order, at most `limit`. Gap-free: a notice
    /// written after this call returns comes after every notice it returned.
    fn notices(
        &self,
        of: NoticesOf<'_>,
        after: NoticeId,
        limit: usize,
    ) -> Result<Vec<OfferNotice>, StorageError>;

    /// The last notice a reader can see now (`NoticeId::default()` for none): where a stream
    /// that wants only what is new starts.
    fn last_notice(&self) -> Result<NoticeId, StorageError>;

    /// Forgets notices from before `before_ms`; returns how many.
    fn prune_notices(&self, before_ms: i64) -> Result<u64, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_ids_read_back_and_order_as_pairs() {
        let a: NoticeId = "7-12".parse().unwrap();
        assert_eq!(a, NoticeId(7, 12));
        assert_eq!(a.to_string(), "7-12");
        assert!(NoticeId(7, 12) < NoticeId(8, 1));
        assert!(NoticeId(0, 2) > NoticeId(0, 1));
        for bad in [
            "",
            "7",
            "7-",
            "-1",
            "a-b",
            "1-2-3",
            "18446744073709551616-1",
        ] {
            let e = bad.parse::<NoticeId>().unwrap_err();
            assert!(e.contains("event id"), "{bad}: {e}");
        }
    }
}
