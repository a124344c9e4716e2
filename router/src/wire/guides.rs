//! The guides' side: leads as a guide's app shows them, and offer notices as stream events.

use super::{decision_to_pb, lead_to_pb, ms_to_timestamp};
use crate::domain::Decision;
use crate::storage::{NoticeKind, OfferNotice};
use leadrouter_proto::v1 as pb;

/// A stored decision with the lead it decided.
pub fn guide_lead_to_pb(d: &Decision) -> pb::GuideLead {
    pb::GuideLead {
        decision: Some(decision_to_pb(d)),
        lead: Some(lead_to_pb(&d.lead)),
    }
}

pub fn notice_kind_to_pb(k: NoticeKind) -> pb::OfferUpdateKind {
    match k {
        NoticeKind::Offered => pb::OfferUpdateKind::OfferUpdateOffered,
        NoticeKind::Accepted => pb::OfferUpdateKind::OfferUpdateAccepted,
        NoticeKind::Left => pb::OfferUpdateKind::OfferUpdateLeft,
        NoticeKind::Queued => pb::OfferUpdateKind::OfferUpdateQueued,
        NoticeKind::Claimed => pb::OfferUpdateKind::OfferUpdateClaimed,
        NoticeKind::Unrouted => pb::OfferUpdateKind::OfferUpdateUnrouted,
    }
}

/// A notice as a stream event, with the lead's decision as stored when sent (if read).
pub fn offer_event_to_pb(n: &OfferNotice, decision: Option<&Decision>) -> pb::OfferUpdate {
    pb::OfferUpdate {
        event_id: n.id.to_string(),
        kind: notice_kind_to_pb(n.kind) as i32,
        lead_id: n.lead_id.clone(),
        decision_id: n.decision_id.clone(),
        version: n.version,
        guide_id: n.guide_id.clone(),
        store_id: n.store_id.clone(),
        expires_at: n.expires_at_ms.map(ms_to_timestamp),
        at: Some(ms_to_timestamp(n.at_ms)),
        lead: decision.map(guide_lead_to_pb),
    }
}
