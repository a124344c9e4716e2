//! Changes an operator makes to the network in service: add or change a store or a guide, set a
//! guide's status. A change is applied to the [`NetworkSpec`] and the result is checked like a
//! network loaded from files; it says what it replaced, for the audit log.

use super::network::{Entry, GuideSpec, GuideStatus, Network, NetworkSpec, StoreSpec};
use crate::domain::{FieldError, check_id};
use serde::Serialize;

/// One change to the network.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogChange {
    /// Adds a store, or replaces the store with this id. Stores are never removed: close them.
    UpsertStore(StoreSpec),
    /// Adds a guide, or replaces the guide with this id (a new `store_id` moves the guide).
    UpsertGuide(GuideSpec),
    /// Sets a guide's status.
    SetGuideStatus {
        guide_id: String,
        status: GuideStatus,
    },
}

/// Why a change was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
}

/// What a change did: the record before (absent for an addition) and after, as JSON, and the
/// checked network.
#[derive(Debug)]
pub struct Changed {
    pub action: &'static str,
    /// `store:<id>` or `guide:<id>`.
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
    pub network: Network,
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl CatalogChange {
    pub fn action(&self) -> &'static str {
        match self {
            Self::UpsertStore(_) => "upsert_store",
            Self::UpsertGuide(_) => "upsert_guide",
            Self::SetGuideStatus { .. } => "set_guide_status",
        }
    }

    /// Applies the change to `current` and checks the result. Field names in errors are those
    /// of the request (`store.lat`, `guide.daily_capacity`, `guide_id`).
    pub fn apply(&self, current: &Network) -> Result<Changed, ChangeError> {
        let mut spec: NetworkSpec = current.spec().clone();
        let (prefix, target, before, after, entry) = match self {
            Self::UpsertStore(s) => {
                check_id("store.store_id", &s.store_id).map_err(ChangeError::Invalid)?;
                let pos = spec.stores.iter().position(|x| x.store_id == s.store_id);
                let before = pos.map(|i| json(&spec.stores[i]));
                let i = match pos {
                    Some(i) => {
                        spec.stores[i] = s.clone();
                        i
                    }
                    None => {
                        spec.stores.push(s.clone());
                        spec.stores.len() - 1
                    }
                };
                (
                    "store",
                    format!("store:{}", s.store_id),
                    before,
                    json(s),
                    Entry::Store(i),
                )
            }
            Self::UpsertGuide(g) => {
                check_id("guide.guide_id", &g.guide_id).map_err(ChangeError::Invalid)?;
                check_id("guide.store_id", &g.store_id).map_err(ChangeError::Invalid)?;
                let pos = spec.guides.iter().position(|x| x.guide_id == g.guide_id);
                let before = pos.map(|i| json(&spec.guides[i]));
                let i = match pos {
                    Some(i) => {
                        check_transition(&g.guide_id, spec.guides[i].status, g.status)?;
                        spec.guides[i] = g.clone();
                        i
                    }
                    None => {
                        spec.guides.push(g.clone());
                        spec.guides.len() - 1
                    }
                };
                (
                    "guide",
                    format!("guide:{}", g.guide_id),
                    before,
                    json(g),
                    Entry::Guide(i),
                )
            }
            Self::SetGuideStatus { guide_id, status } => {
                check_id("guide_id", guide_id).map_err(ChangeError::Invalid)?;
                let Some(i) = spec.guides.iter().position(|x| &x.guide_id == guide_id) else {
                    return Err(ChangeError::NotFound(format!(
                        "guide_id: no guide {guide_id:?} in the network"
                    )));
                };
                check_transition(guide_id, spec.guides[i].status, *status)?;
                let before = Some(json(&spec.guides[i]));
                spec.guides[i].status = *status;
                let after = json(&spec.guides[i]);
                (
                    "guide",
                    format!("guide:{guide_id}"),
                    before,
                    after,
                    Entry::Guide(i),
                )
            }
        };
        let network = Network::build_with(current.regions_arc(), spec, current.learned_models())
            .map_err(|e| {
                // Only the changed entry can break a network that was valid before.
                let field = if e.entry == entry {
                    format!("{prefix}.{}", e.error.field)
                } else {
                    e.error.field
                };
                ChangeError::Invalid(FieldError::new(field, e.error.rule))
            })?;
        Ok(Changed {
            action: self.action(),
            target,
            before,
            after,
            network,
        })
    }
}

/// A guide who left stays gone: leads and members must not come back to them. Re-hiring is a
/// new guide id.
fn check_transition(guide_id: &str, from: GuideStatus, to: GuideStatus) -> Result<(), ChangeError> {
    if from == GuideStatus::Left && to != GuideStatus::Left {
        return Err(ChangeError::Precondition(format!(
            "guide {guide_id:?} has left; a guide who left cannot become {} again (add them \
             under a new guide_id)",
            to.as_str()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Ownership, Pricing, RegionTree, demo_files};
    use std::sync::Arc;

    fn demo() -> Network {
        demo_files().load(Arc::new(RegionTree::embedded())).unwrap()
    }

    fn store(id: &str) -> StoreSpec {
        StoreSpec {
            store_id: id.into(),
            name: "New store".into(),
            region_code: "110105".into(),
            lat: 39.92,
            lon: 116.44,
            ownership: Ownership::Direct,
            pricing: Pricing::FullPrice,
            categories: vec!["shoes".into()],
            open: true,
        }
    }

    #[test]
    fn upsert_store_adds_then_replaces() {
        let net = demo();
        let n = net.stores().len();
        let added = CatalogChange::UpsertStore(store("S-NEW"))
            .apply(&net)
            .unwrap();
        assert_eq!(added.network.stores().len(), n + 1);
        assert!(added.before.is_none());
        assert_ne!(added.network.version(), net.version());
        let mut closed = store("S-NEW");
        closed.open = false;
        let replaced = CatalogChange::UpsertStore(closed)
            .apply(&added.network)
            .unwrap();
        assert_eq!(replaced.network.stores().len(), n + 1);
        assert_eq!(replaced.before.unwrap()["open"], true);
        let i = replaced.network.store_index("S-NEW").unwrap();
        assert!(!replaced.network.store(i).open);
    }

    #[test]
    fn bad_changes_name_the_request_field() {
        let net = demo();
        let mut s = store("S-NEW");
        s.lat = 91.0;
        let e = CatalogChange::UpsertStore(s).apply(&net).unwrap_err();
        assert!(e.to_string().starts_with("store.lat: "), "{e}");
        let g = GuideSpec {
            guide_id: "G-NEW".into(),
            store_id: "S-NOWHERE".into(),
            name: "x".into(),
            daily_capacity: 5,
            tier: 3,
            status: GuideStatus::Active,
        };
        let e = CatalogChange::UpsertGuide(g.clone())
            .apply(&net)
            .unwrap_err();
        assert_eq!(e.to_string(), "guide.store_id: unknown store \"S-NOWHERE\"");
        let e = CatalogChange::UpsertGuide(GuideSpec {
            store_id: net.store(0).id.to_string(),
            daily_capacity: 0,
            ..g
        })
        .apply(&net)
        .unwrap_err();
        assert!(e.to_string().starts_with("guide.daily_capacity: "), "{e}");
        let e = CatalogChange::SetGuideStatus {
            guide_id: "G-NOWHERE".into(),
            status: GuideStatus::Away,
        }
        .apply(&net)
        .unwrap_err();
        assert!(matches!(e, ChangeError::NotFound(_)), "{e}");
    }

    #[test]
    fn a_guide_who_left_stays_gone() {
        let net = demo();
        let id = net.guide(0).id.to_string();
        let left = CatalogChange::SetGuideStatus {
            guide_id: id.clone(),
            status: GuideStatus::Left,
        }
        .apply(&net)
        .unwrap();
        let g = left.network.guide(left.network.guide_index(&id).unwrap());
        assert_eq!(g.status, GuideStatus::Left);
        assert!(
            !left
                .network
                .guide_key(left.network.guide_index(&id).unwrap())
                .active
        );
        for to in [GuideStatus::Active, GuideStatus::Away] {
            let e = CatalogChange::SetGuideStatus {
                guide_id: id.clone(),
                status: to,
            }
            .apply(&left.network)
            .unwrap_err();
            assert!(matches!(e, ChangeError::Precondition(_)), "{e}");
        }
    }
}
