//! Step 1 of route(): check a lead against the contract's rules and the network.

use crate::catalog::{Network, RegionId};
use crate::domain::{FieldError, Lead, check_id, check_optional_id};

/// Most interests a lead may carry.
pub const MAX_INTERESTS: usize = 32;
/// How far `occurred_at` may lie in the future (clock skew allowance), in milliseconds.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// A lead checked against the network.
#[derive(Debug, Clone)]
pub struct ValidLead {
    pub region: RegionId,
    /// `(category index, weight)` with weights normalised to sum to 1; empty when the lead stated
    /// no positive interest.
    pub interests: Vec<(usize, f32)>,
    /// Categories with positive weight.
    pub interest_mask: u64,
}

pub fn validate(net: &Network, lead: &Lead, now_ms: i64) -> Result<ValidLead, FieldError> {
    check_id("lead_id", &lead.lead_id)?;
    check_optional_id("member_id", lead.member_id.as_deref())?;
    check_optional_id("referrer_guide_id", lead.referrer_guide_id.as_deref())?;
    let region = net
        .regions()
        .resolve(&lead.region_code)
        .map_err(|rule| FieldError::new("region_code", rule))?;
    if let Some(l) = &lead.location {
        crate::domain::Location::new(l.lat, l.lon, "location")?;
    }
    if lead.interests.len() > MAX_INTERESTS {
        return Err(FieldError::new(
            "interests",
            format!(
                "at most {MAX_INTERESTS} entries, got {}",
                lead.interests.len()
            ),
        ));
    }
    let mut interests = Vec::with_capacity(lead.interests.len());
    let mut mask = 0u64;
    let mut seen = 0u64;
    let mut total = 0.0f64;
    for (i, it) in lead.interests.iter().enumerate() {
        let Some(c) = net.category_index(&it.category) else {
            let rule = if it.category.is_empty() {
                "must not be empty".to_string()
            } else {
                format!(
                    "unknown category {:?} (known: {})",
                    it.category,
                    net.categories().join(", ")
                )
            };
            return Err(FieldError::new(format!("interests[{i}].category"), rule));
        };
        if seen & (1 << c) != 0 {
            return Err(FieldError::new(
                format!("interests[{i}].category"),
                format!("{:?} is listed twice", it.category),
            ));
        }
        seen |= 1 << c;
        if !it.weight.is_finite() || it.weight < 0.0 || it.weight > 1e6 {
            return Err(FieldError::new(
                format!("interests[{i}].weight"),
                format!("must be a finite number in [0, 1e6], got {}", it.weight),
            ));
        }
        if it.weight > 0.0 {
            mask |= 1 << c;
            total += it.weight;
            interests.push((c, it.weight));
        }
    }
    if lead.occurred_at_ms > now_ms + MAX_FUTURE_SKEW_MS {
        return Err(FieldError::new(
            "occurred_at",
            format!(
                "lies {} s in the future; at most {} s of clock skew is accepted",
                (lead.occurred_at_ms - now_ms) / 1000,
                MAX_FUTURE_SKEW_MS / 1000
            ),
        ));
    }
    Ok(ValidLead {
        region,
        interests: interests
            .into_iter()
            .map(|(c, w)| (c, (w / total) as f32))
            .collect(),
        interest_mask: mask,
    })
}
