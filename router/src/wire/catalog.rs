//! Catalog messages: stores, guides, their status and the audit log.

use super::ms_to_timestamp;
use crate::catalog::{GuideSpec, GuideStatus, Network, Ownership, Pricing, StoreSpec};
use crate::domain::FieldError;
use crate::domain::audit::AuditEntry;
use leadrouter_proto::v1 as pb;

pub fn status_to_pb(s: GuideStatus) -> pb::GuideStatus {
    match s {
        GuideStatus::Active => pb::GuideStatus::Active,
        GuideStatus::Away => pb::GuideStatus::Away,
        GuideStatus::Left => pb::GuideStatus::Left,
    }
}

pub fn status_from_pb(field: &str, v: i32) -> Result<GuideStatus, FieldError> {
    match pb::GuideStatus::try_from(v) {
        Ok(pb::GuideStatus::Active) => Ok(GuideStatus::Active),
        Ok(pb::GuideStatus::Away) => Ok(GuideStatus::Away),
        Ok(pb::GuideStatus::Left) => Ok(GuideStatus::Left),
        Ok(pb::GuideStatus::Unspecified) => Err(FieldError::new(
            field,
            "must be ACTIVE, AWAY or LEFT (GUIDE_STATUS_UNSPECIFIED is not a status)",
        )),
        Err(_) => Err(FieldError::new(field, format!("unknown enum value {v}"))),
    }
}

pub fn store_to_pb(net: &Network, idx: u32) -> pb::Store {
    let s = net.store(idx);
    pb::Store {
        store_id: s.id.to_string(),
        name: s.name.clone(),
        region_code: net.store_region_code(idx),
        location: Some(pb::Location {
            lat: s.location.lat,
            lon: s.location.lon,
        }),
        ownership: match s.ownership {
            Ownership::Direct => pb::StoreOwnership::Direct,
            Ownership::Franchise => pb::StoreOwnership::Franchise,
        } as i32,
        pricing: match s.pricing {
            Pricing::FullPrice => pb::StorePricing::FullPrice,
            Pricing::Outlet => pb::StorePricing::Outlet,
        } as i32,
        categories: net
            .categories()
            .iter()
            .enumerate()
            .filter(|(k, _)| s.categories & (1 << k) != 0)
            .map(|(_, c)| c.clone())
            .collect(),
        open: s.open,
        guides: s
            .guides
            .clone()
            .map(|g| {
                let g = net.guide(g);
                pb::Guide {
                    guide_id: g.id.to_string(),
                    store_id: s.id.to_string(),
                    name: g.name.clone(),
                    daily_capacity: g.daily_capacity,
                    tier: u32::from(g.tier),
                    status: status_to_pb(g.status) as i32,
                }
            })
            .collect(),
    }
}

/// A store to add or replace. Ranges and references are checked with the network.
pub fn store_from_pb(s: Option<pb::Store>) -> Result<StoreSpec, FieldError> {
    let s = s.ok_or_else(|| FieldError::new("store", "must be set"))?;
    if !s.guides.is_empty() {
        return Err(FieldError::new(
            "store.guides",
            "must be empty: add or change guides with UpsertGuide",
        ));
    }
    let at = s
        .location
        .ok_or_else(|| FieldError::new("store.location", "must be set"))?;
    let ownership = match pb::StoreOwnership::try_from(s.ownership) {
        Ok(pb::StoreOwnership::Direct) => Ownership::Direct,
        Ok(pb::StoreOwnership::Franchise) => Ownership::Franchise,
        _ => {
            return Err(FieldError::new(
                "store.ownership",
                format!("must be DIRECT or FRANCHISE, got {}", s.ownership),
            ));
        }
    };
    let pricing = match pb::StorePricing::try_from(s.pricing) {
        Ok(pb::StorePricing::FullPrice) => Pricing::FullPrice,
        Ok(pb::StorePricing::Outlet) => Pricing::Outlet,
        _ => {
            return Err(FieldError::new(
                "store.pricing",
                format!("must be FULL_PRICE or OUTLET, got {}", s.pricing),
            ));
        }
    };
    Ok(StoreSpec {
        store_id: s.store_id,
        name: s.name,
        region_code: s.region_code,
        lat: at.lat,
        lon: at.lon,
        ownership,
        pricing,
        categories: s.categories,
        open: s.open,
    })
}

/// A guide to add or replace.
pub fn guide_from_pb(g: Option<pb::Guide>) -> Result<GuideSpec, FieldError> {
    let g = g.ok_or_else(|| FieldError::new("guide", "must be set"))?;
    let tier = u8::try_from(g.tier)
        .ok()
        .filter(|t| (1..=5).contains(t))
        .ok_or_else(|| {
            FieldError::new("guide.tier", format!("must be in 1..=5, got {}", g.tier))
        })?;
    Ok(GuideSpec {
        guide_id: g.guide_id,
        store_id: g.store_id,
        name: g.name,
        daily_capacity: g.daily_capacity,
        tier,
        status: status_from_pb("guide.status", g.status)?,
    })
}

pub fn audit_to_pb(e: &AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        at: Some(ms_to_timestamp(e.at_ms)),
        operator_id: e.actor.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        reason: e.reason.clone(),
        before_json: e.before.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        after_json: e.after.to_string(),
        network_version: e.network_version.clone(),
    }
}
