//! Record format of stored decisions: `leadrouter.storage.v1.DecisionRecord` (protobuf), so that
//! fields can be added without breaking what is on disk.

use crate::domain::{Day, Decision};
use crate::wire;
use leadrouter_proto::storage::v1::DecisionRecord;
use prost::Message;

pub fn encode_decision(d: &Decision) -> Vec<u8> {
    let mut response = wire::decision_to_pb(d);
    response.replayed = false;
    DecisionRecord {
        response: Some(response),
        day: d.day.0,
        request: Some(wire::lead_to_pb(&d.lead)),
        recorded_by: d.recorded_by.clone().unwrap_or_default(),
        version: d.version,
    }
    .encode_to_vec()
}

pub fn decode_decision(bytes: &[u8]) -> Result<Decision, String> {
    let rec = DecisionRecord::decode(bytes).map_err(|e| e.to_string())?;
    let request = rec.request.ok_or("record has no request")?;
    let lead = wire::lead_from_pb(request).map_err(|e| format!("stored request: {e}"))?;
    let response = rec.response.ok_or("record has no response")?;
    let mut d = wire::decision_from_pb(response, lead, Day(rec.day));
    d.recorded_by = (!rec.recorded_by.is_empty()).then_some(rec.recorded_by);
    d.version = rec.version.max(1);
    Ok(d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Alternative, Channel, Interest, Lead, Level, Location, Reasons};

    pub(crate) fn sample_decision() -> Decision {
        Decision {
            decision_id: "dec-1".into(),
            lead: Lead {
                lead_id: "L1".into(),
                member_id: Some("M1".into()),
                channel: Channel::Livestream,
                region_code: "440106".into(),
                location: Some(Location {
                    lat: 23.1,
                    lon: 113.3,
                }),
                interests: vec![Interest {
                    category: "shoes".into(),
                    weight: 0.5,
                }],
                referrer_guide_id: None,
                occurred_at_ms: 1_763_900_000_000,
            },
            assigned: Some(("S1".into(), "G1".into())),
            unrouted: None,
            policy: "scored".into(),
            policy_version: "1".into(),
            score: 0.75,
            reasons: Reasons::LEVEL_DISTRICT.with(Reasons::NEARBY),
            alternatives: vec![Alternative {
                store_id: "S2".into(),
                guide_id: "G2".into(),
                score: 0.5,
                reasons: Reasons::LOAD_BALANCE,
                propensity: 0.25,
            }],
            propensity: 1.0,
            level: Some(Level::District),
            decided_at_ms: 1_763_900_000_123,
            day: Day(20_415),
            replayed: false,
            binding: None,
            offer: None,
            model_versions: vec!["pref-0123456789abcdef".into()],
            arm: Some(("e1".into(), "control".into())),
            recorded_by: Some("backend".into()),
            version: 1,
        }
    }

    #[test]
    fn round_trip() {
        let d = sample_decision();
        assert_eq!(decode_decision(&encode_decision(&d)).unwrap(), d);
        assert!(decode_decision(b"\xff\xff").is_err());
    }
}
