//! Operator changes to the network in service (stores, guides, guide status), applied without a
//! restart: checked, saved with an audit entry and flushed, then swapped in. Routes in flight
//! finish on the old network; counts carry over by guide id.

use super::{Engine, Snapshot};
use crate::catalog::{CatalogChange, ChangeError, GuideStatus};
use crate::domain::audit::{AuditEntry, MAX_REASON_LEN};
use crate::domain::{FieldError, check_id};
use crate::policy::PolicyConfig;
use crate::storage::{NetworkSave, NetworkSaved, StorageError};
use std::sync::Arc;

/// Why an operator's change (or a guide's answer to an offer) was refused or not saved.
/// Nothing changed in either case.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<ChangeError> for CatalogError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid(f) => Self::Invalid(f),
            ChangeError::NotFound(m) => Self::NotFound(m),
            ChangeError::Precondition(m) => Self::Precondition(m),
        }
    }
}

/// A change in service.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The recorded change; `None` when the request changed nothing (a retry, or the same
    /// record again): nothing is written then.
    pub entry: Option<AuditEntry>,
    /// The network version in service.
    pub network_version: String,
    /// Members moved because the change made their guide leave or move store.
    pub transferred: Vec<super::Moved>,
}

/// Checks who asks and why.
pub fn check_actor(actor: &str, reason: &str) -> Result<(), FieldError> {
    check_id("operator_id", actor)?;
    if reason.len() > MAX_REASON_LEN {
        return Err(FieldError::new(
            "reason",
            format!(
                "must be at most {MAX_REASON_LEN} bytes, got {}",
                reason.len()
            ),
        ));
    }
    Ok(())
}

impl Engine {
    /// Applies an operator's change. It is durable (network and audit entry flushed) before it
    /// takes effect and before this returns; new routes see it at once.
    pub fn apply_change(
        &self,
        change: &CatalogChange,
        actor: &str,
        reason: &str,
    ) -> Result<Applied, CatalogError> {
        check_actor(actor, reason).map_err(CatalogError::Invalid)?;
        let _one_at_a_time = self.admin.lock();
        // Applied to the network in service and saved only if storage still holds that
        // version; when another replica saved first, its network is taken up and the change
        // applied again on it.
        // Nothing saved yet (an engine started on a network it was handed): the first change
        // saves whatever is there.
        let mut expected_nothing = false;
        let mut tries = 0;
        let (current, changed, entry) = loop {
            tries += 1;
            if tries > crate::storage::MAX_ATTEMPTS {
                return Err(CatalogError::Storage(StorageError::Contended(
                    "the network kept changing while this change was saved".into(),
                )));
            }
            let current = self.snapshot();
            let changed = change.apply(&current.network)?;
            if changed.network.version() == current.network.version() {
                return Ok(Applied {
                    entry: None,
                    network_version: current.network.version().to_string(),
                    transferred: vec![],
                });
            }
            let mut entry = AuditEntry {
                seq: 0,
                at_ms: self.clock.now_ms(),
                actor: actor.to_string(),
                action: changed.action.to_string(),
                target: changed.target.clone(),
                reason: reason.to_string(),
                before: changed.before.clone(),
                after: changed.after.clone(),
                network_version: changed.network.version().to_string(),
            };
            let line = |seq| {
                AuditEntry {
                    seq,
                    ..entry.clone()
                }
                .to_line()
            };
            let saved = self.store.save_network(&NetworkSave {
                spec: changed.network.spec(),
                version: changed.network.version(),
                expected: (!expected_nothing).then(|| current.network.version()),
                audit: Some(&line),
            })?;
            match saved {
                NetworkSaved::Saved { audit_seq } => {
                    entry.seq = audit_seq.unwrap_or_default();
                    break (current, changed, entry);
                }
                NetworkSaved::Moved(None) => expected_nothing = true,
                NetworkSaved::Moved(Some(_)) => {
                    self.take_up_stored_network()?;
                }
            }
        };
        // A guide who leaves or moves store leaves their members behind, in the old store.
        let departing = match change {
            CatalogChange::SetGuideStatus {
                guide_id,
                status: GuideStatus::Left,
            } => Some(guide_id.clone()),
            CatalogChange::UpsertGuide(g) => {
                let old_store = current.network.guide_index(&g.guide_id).map(|i| {
                    current
                        .network
                        .store(current.network.guide(i).store)
                        .id
                        .clone()
                });
                let moved = old_store.as_deref().is_some_and(|s| s != g.store_id);
                let left = g.status == GuideStatus::Left
                    && current
                        .network
                        .guide_index(&g.guide_id)
                        .is_some_and(|i| current.network.guide(i).status != GuideStatus::Left);
                (moved || left).then(|| g.guide_id.clone())
            }
            _ => None,
        };
        let from_store = departing.as_ref().and_then(|id| {
            let i = current.network.guide_index(id)?;
            Some(
                current
                    .network
                    .store(current.network.guide(i).store)
                    .id
                    .to_string(),
            )
        });
        let mut state = self.state.write();
        let book = state.book.carried_over(&state.network, &changed.network);
        *state = Arc::new(Snapshot {
            network: changed.network,
            book,
            policy: state.policy.clone(),
            policy_config: state.policy_config.clone(),
            experiments: state.experiments.clone(),
        });
        drop(state);
        tracing::info!(
            seq = entry.seq,
            actor = %entry.actor,
            action = %entry.action,
            target = %entry.target,
            network_version = %entry.network_version,
            "network changed"
        );
        let transferred = match (departing, self.cfg.transfers.on_leave) {
            (Some(guide), true) => {
                let rule = self
                    .cfg
                    .transfers
                    .check()
                    .map_err(|e| CatalogError::Precondition(e.to_string()))?;
                let transfer_id = format!("audit-{}", entry.seq);
                self.transfer_members(
                    &transfer_id,
                    &guide,
                    from_store.as_deref(),
                    &rule,
                    actor,
                    reason,
                )
                .map_err(|e| {
                    // The change itself is saved and in service; say so, and how to finish.
                    CatalogError::Storage(StorageError::Backend(format!(
                        "the change is applied (audit entry {}), but moving {guide}'s members \
                         failed: {e}; finish with TransferMembers(transfer_id = {transfer_id:?})",
                        entry.seq
                    )))
                })?
            }
            _ => vec![],
        };
        Ok(Applied {
            network_version: entry.network_version.clone(),
            entry: Some(entry),
            transferred,
        })
    }

    /// Appends an audit entry for an operator's action outside the network (a dispute's
    /// resolution), in the same log and sequence as network changes. Durable after the next
    /// flush.
    pub fn record_audit(
        &self,
        action: &str,
        target: &str,
        actor: &str,
        reason: &str,
        after: serde_json::Value,
    ) -> Result<AuditEntry, StorageError> {
        self.audit_entry(None, action, target, actor, reason, after)
    }

    /// As [`Engine::record_audit`], unless an entry was recorded under `key` before (an
    /// action that several writers may complete is audited once); returns the entry as
    /// recorded now, with the number of the one stored under `key`.
    pub fn record_audit_once(
        &self,
        key: &str,
        action: &str,
        target: &str,
        actor: &str,
        reason: &str,
        after: serde_json::Value,
    ) -> Result<AuditEntry, StorageError> {
        self.audit_entry(Some(key), action, target, actor, reason, after)
    }

    fn audit_entry(
        &self,
        key: Option<&str>,
        action: &str,
        target: &str,
        actor: &str,
        reason: &str,
        after: serde_json::Value,
    ) -> Result<AuditEntry, StorageError> {
        // Storage numbers the entry: no lock is needed here.
        let mut entry = AuditEntry {
            seq: 0,
            at_ms: self.clock.now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            reason: reason.to_string(),
            before: None,
            after,
            network_version: self.snapshot().network.version().to_string(),
        };
        let line = |seq| {
            AuditEntry {
                seq,
                ..entry.clone()
            }
            .to_line()
        };
        entry.seq = match key {
            Some(k) => self.store.append_audit_once(k, &line)?,
            None => self.store.append_audit(&line)?,
        };
        Ok(entry)
    }

    /// Takes up the network storage holds when another writer (a replica) saved a newer one:
    /// the learned models in service stay, counts carry over by guide id. Returns whether the
    /// network in service changed.
    pub fn take_up_stored_network(&self) -> Result<bool, CatalogError> {
        let current = self.snapshot();
        if self.store.network_version()?.as_deref() == Some(current.network.version()) {
            return Ok(false);
        }
        let Some(spec) = self.store.network()? else {
            return Ok(false);
        };
        let network = crate::catalog::Network::build_with(
            current.network.regions_arc(),
            spec,
            current.network.learned_models(),
        )
        .map_err(|e| {
            CatalogError::Storage(StorageError::Corrupt {
                key: "network".into(),
                why: format!("the saved network does not build: {e}"),
            })
        })?;
        if network.version() == current.network.version() {
            return Ok(false);
        }
        let mut state = self.state.write();
        let book = state.book.carried_over(&state.network, &network);
        tracing::info!(
            from = %state.network.version(),
            to = %network.version(),
            "took up the network another replica saved"
        );
        *state = Arc::new(Snapshot {
            network,
            book,
            policy: state.policy.clone(),
            policy_config: state.policy_config.clone(),
            experiments: state.experiments.clone(),
        });
        Ok(true)
    }

    /// Takes up what other replicas changed in storage: a network another saved, and every
    /// guide's count today (this engine's book is a cache of storage's counts, which decide).
    /// Run on an interval by the server. Returns whether the network in service changed.
    pub fn refresh_from_storage(&self) -> Result<bool, CatalogError> {
        let changed = self.take_up_stored_network()?;
        let snap = self.snapshot();
        let day = self.today();
        let counts: std::collections::HashMap<String, u32> =
            self.store.day_counts(day)?.into_iter().collect();
        for (i, g) in snap.network.guides().iter().enumerate() {
            snap.book
                .set(i as u32, day, counts.get(&*g.id).copied().unwrap_or(0));
        }
        Ok(changed)
    }

    /// Audit entries from `from_seq` on, at most `limit`.
    pub fn audit(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StorageError> {
        self.store
            .audit_from(from_seq, limit)?
            .into_iter()
            .map(|(seq, line)| {
                AuditEntry::from_line(&line).map_err(|why| StorageError::Corrupt {
                    key: format!("audit/{seq}"),
                    why,
                })
            })
            .collect()
    }
}

impl Engine {
    /// Puts a learned preference model in service (or, with `None`, goes back to the network's
    /// shipped matrix), without a restart: the model is checked against the network, the stores'
    /// preferences are rebuilt beside the network in service, and the new snapshot is swapped
    /// in once routes in flight finish; counts carry over. A model that does not fit is refused
    /// with the reason and the one in service stays. Returns the version it replaced.
    pub fn set_preference_model(
        &self,
        model: Option<Arc<leadrouter_models::preference_fit::PreferenceModel>>,
    ) -> Result<Option<String>, String> {
        self.swap_models(|current, models| {
            if let Some(m) = &model {
                current.check_learned(m)?;
            }
            let before = models.preference.as_ref().map(|m| m.meta.version.clone());
            models.preference = model.clone();
            Ok(before)
        })
    }

    /// Puts a learned propensity model in service (`None` takes it out), as
    /// [`Engine::set_preference_model`] does. Returns the version it replaced.
    pub fn set_propensity_model(
        &self,
        model: Option<Arc<leadrouter_models::propensity::PropensityModel>>,
    ) -> Result<Option<String>, String> {
        self.swap_models(|_, models| {
            let before = models.propensity.as_ref().map(|m| m.meta.version.clone());
            models.propensity = model.clone();
            Ok(before)
        })
    }

    /// Puts a routing policy and experiments in service without a restart (on SIGHUP): all are
    /// built and checked first, and on refusal nothing changes (the message names the entry).
    /// A policy whose configuration is unchanged keeps its instance, and with it its state
    /// (`round_robin`'s turn, `dual_price`'s pace). Returns a summary of what is in service.
    pub fn set_policies(
        &self,
        policy: &PolicyConfig,
        experiments: &[crate::policy::experiments::ExperimentConfig],
    ) -> Result<String, String> {
        let _admin = self.admin.lock();
        let current = self.snapshot();
        let default = if *policy == current.policy_config {
            current.policy.clone()
        } else {
            Arc::from(policy.build(&current.network)?)
        };
        let ex = crate::policy::experiments::Experiments::build(
            experiments,
            &current.network,
            &current.experiments,
        )?;
        let summary = std::iter::once(format!("policy {} {}", default.name(), default.version()))
            .chain(ex.0.iter().map(|e| {
                let arms: Vec<String> = e
                    .arms
                    .iter()
                    .map(|a| format!("{}={}", a.name, a.policy.name()))
                    .collect();
                format!("experiment {} [{}]", e.name, arms.join(", "))
            }))
            .collect::<Vec<_>>()
            .join("; ");
        // The snapshot owns its network: the same one, built again beside the one in service.
        let network = crate::catalog::Network::build_with(
            current.network.regions_arc(),
            current.network.spec().clone(),
            current.network.learned_models(),
        )
        .map_err(|e| e.to_string())?;
        let mut state = self.state.write();
        let book = state.book.carried_over(&state.network, &network);
        *state = Arc::new(Snapshot {
            network,
            book,
            policy: default,
            policy_config: policy.clone(),
            experiments: Arc::new(ex),
        });
        drop(state);
        tracing::info!(%summary, "routing policies swapped");
        Ok(summary)
    }

    /// Puts members' segments in service (`None` takes them out). Returns the version replaced.
    pub fn set_member_segments(
        &self,
        segments: Option<Arc<leadrouter_models::segments::MemberSegments>>,
    ) -> Result<Option<String>, String> {
        self.swap_models(|_, models| {
            let before = models.segments.as_ref().map(|m| m.version.clone());
            models.segments = segments.clone();
            Ok(before)
        })
    }

    /// Puts exactly these learned models in service, in one swap (the preference model is
    /// checked against the network first; on refusal nothing changes).
    pub fn set_learned_models(&self, new: crate::catalog::LearnedModels) -> Result<(), String> {
        self.swap_models(|current, models| {
            if let Some(m) = &new.preference {
                current
                    .check_learned(m)
                    .map_err(|e| format!("preference: {e}"))?;
            }
            *models = new.clone();
            Ok(None)
        })
        .map(|_| ())
    }

    fn swap_models(
        &self,
        change: impl FnOnce(
            &crate::catalog::Network,
            &mut crate::catalog::LearnedModels,
        ) -> Result<Option<String>, String>,
    ) -> Result<Option<String>, String> {
        let _admin = self.admin.lock();
        let current = self.snapshot();
        let mut models = current.network.learned_models();
        let before = change(&current.network, &mut models)?;
        let after = models.versions();
        let network = crate::catalog::Network::build_with(
            current.network.regions_arc(),
            current.network.spec().clone(),
            models,
        )
        .map_err(|e| e.to_string())?;
        let mut state = self.state.write();
        let book = state.book.carried_over(&state.network, &network);
        *state = Arc::new(Snapshot {
            network,
            book,
            policy: state.policy.clone(),
            policy_config: state.policy_config.clone(),
            experiments: state.experiments.clone(),
        });
        drop(state);
        tracing::info!(models = ?after, "learned models swapped");
        Ok(before)
    }
}
