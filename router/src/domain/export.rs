//! Routing decisions as JSON Lines (`leadrouter trail export --decisions`): one line per routed
//! lead with the lead as it arrived and what happened to it. Analysts replay these arrivals
//! under other policies (`leadrouter-sim replay`).

use super::{Channel, Decision, Interest, Lead, Location};
use serde::{Deserialize, Serialize};

/// One decision, flattened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLine {
    pub decision_id: String,
    pub lead_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub channel: Channel,
    pub region_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<InterestLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_guide_id: Option<String>,
    pub occurred_at_ms: i64,
    pub decided_at_ms: i64,
    /// The business day, YYYY-MM-DD.
    pub day: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide_id: Option<String>,
    /// Why nothing was routed (`NO_CANDIDATE`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrouted: Option<String>,
    pub policy: String,
    pub policy_version: String,
    pub score: f64,
    pub reasons: Vec<String>,
    /// The probability with which the policy picked the guide (1 for a deterministic pick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// The experiment and arm that chose the policy (`[[experiments]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterestLine {
    pub category: String,
    pub weight: f64,
}

impl From<&Decision> for DecisionLine {
    fn from(d: &Decision) -> Self {
        let l = &d.lead;
        Self {
            decision_id: d.decision_id.clone(),
            lead_id: l.lead_id.clone(),
            member_id: l.member_id.clone(),
            channel: l.channel,
            region_code: l.region_code.clone(),
            lat: l.location.map(|x| x.lat),
            lon: l.location.map(|x| x.lon),
            interests: l
                .interests
                .iter()
                .map(|i| InterestLine {
                    category: i.category.clone(),
                    weight: i.weight,
                })
                .collect(),
            referrer_guide_id: l.referrer_guide_id.clone(),
            occurred_at_ms: l.occurred_at_ms,
            decided_at_ms: d.decided_at_ms,
            day: d.day.to_string(),
            store_id: d.assigned.as_ref().map(|(s, _)| s.to_string()),
            guide_id: d.assigned.as_ref().map(|(_, g)| g.to_string()),
            unrouted: d.unrouted.map(|u| u.as_str().to_string()),
            policy: d.policy.clone(),
            policy_version: d.policy_version.clone(),
            score: d.score,
            reasons: d.reasons.names().map(str::to_string).collect(),
            propensity: d.assigned.is_some().then_some(d.propensity),
            experiment: d.arm.as_ref().map(|a| a.0.clone()),
            arm: d.arm.as_ref().map(|a| a.1.clone()),
        }
    }
}

impl DecisionLine {
    /// The lead as it arrived. Coordinates are checked (both or neither, in range); the rest is
    /// checked when the lead is routed again.
    pub fn lead(&self) -> Result<Lead, String> {
        let location = match (self.lat, self.lon) {
            (Some(lat), Some(lon)) => {
                Some(Location::new(lat, lon, "lat").map_err(|e| e.to_string())?)
            }
            (None, None) => None,
            _ => return Err("lat and lon: give both or neither".into()),
        };
        Ok(Lead {
            lead_id: self.lead_id.clone(),
            member_id: self.member_id.clone(),
            channel: self.channel,
            region_code: self.region_code.clone(),
            location,
            interests: self
                .interests
                .iter()
                .map(|i| Interest {
                    category: i.category.clone(),
                    weight: i.weight,
                })
                .collect(),
            referrer_guide_id: self.referrer_guide_id.clone(),
            occurred_at_ms: self.occurred_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::tests::sample_decision;

    #[test]
    fn a_decision_round_trips_through_its_line() {
        let d = sample_decision();
        let line = DecisionLine::from(&d);
        let text = serde_json::to_string(&line).unwrap();
        let back: DecisionLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        assert_eq!(back.lead().unwrap(), d.lead);
        assert_eq!(back.guide_id.as_deref(), d.guide_id());
        let bad = DecisionLine {
            lon: None,
            ..line.clone()
        };
        assert!(bad.lead().unwrap_err().contains("lat and lon"));
        assert!(serde_json::from_str::<DecisionLine>("{\"lead_id\":1}").is_err());
    }
}
