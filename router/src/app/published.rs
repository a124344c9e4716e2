//! The learned models and the rule sets in service on every replica. A replica that loads the artifacts
//! `[models]` names (at start, or on SIGHUP) puts them in service and publishes them in
//! storage ([`crate::storage::Networks::publish`]); every replica takes up a newer publication
//! within [`crate::server::REFRESH_EVERY`] (at once on PostgreSQL, which notifies), checked
//! first like a file: one that cannot be used is logged and counted, and the models in service
//! stay. A replica started without `[models]` serves what is published.
//!
//! The rule sets that carry money (bindings, ownership, splits) are published the same way: a
//! replica whose configuration names them publishes them at start and on SIGHUP (audited as
//! `rules.publish`), and every replica takes them up; one whose configuration names none serves
//! the rule sets in service. A rule set already in force is never changed by this: each
//! ownership and split decision records the version it was made under.

use super::models::{
    member_segments_in, parse_preference, parse_prices, parse_propensity, parse_skill,
};
use crate::attribution::Attribution;
use crate::catalog::LearnedModels;
use crate::config::ModelsConfig;
use crate::engine::Engine;
use crate::storage::StorageError;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The name the learned models are published under.
pub const MODELS: &str = "models";

/// One artifact as published: the file it was read from, and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub file: String,
    pub text: String,
}

impl Artifact {
    fn read(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            file: path.display().to_string(),
            text: std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
        })
    }
}

/// The learned models as one publication (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsBundle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<Artifact>,
}

impl ModelsBundle {
    /// Reads the files `[models]` names.
    pub fn read(cfg: &ModelsConfig) -> anyhow::Result<Self> {
        let read = |p: &Option<std::path::PathBuf>| p.as_deref().map(Artifact::read).transpose();
        Ok(Self {
            preference: read(&cfg.preference)?,
            propensity: read(&cfg.propensity)?,
            segments: read(&cfg.segments)?,
            skill: read(&cfg.skill)?,
            prices: read(&cfg.prices)?,
        })
    }

    /// Every artifact parsed (all before any is used); errors name the file.
    pub fn models(&self) -> anyhow::Result<LearnedModels> {
        Ok(LearnedModels {
            preference: self
                .preference
                .as_ref()
                .map(|a| parse_preference(&a.file, &a.text))
                .transpose()?,
            propensity: self
                .propensity
                .as_ref()
                .map(|a| parse_propensity(&a.file, &a.text))
                .transpose()?,
            segments: self
                .segments
                .as_ref()
                .map(|a| member_segments_in(&a.file, a.text.as_bytes()))
                .transpose()?,
            skill: self
                .skill
                .as_ref()
                .map(|a| parse_skill(&a.file, &a.text))
                .transpose()?,
            prices: self
                .prices
                .as_ref()
                .map(|a| parse_prices(&a.file, &a.text))
                .transpose()?,
        })
    }

    /// Puts the models in service in `engine` (checked against its network first); returns
    /// the versions now in service.
    pub fn install(&self, engine: &Engine) -> anyhow::Result<Vec<String>> {
        engine
            .set_learned_models(self.models()?)
            .map_err(|e| anyhow::anyhow!("[models]: {e}"))?;
        Ok(engine.snapshot().network.learned_models().versions())
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serializes")
    }

    fn decode(seq: u64, body: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(body)
            .with_context(|| format!("published models #{seq} cannot be read"))
    }
}

/// The publication a replica serves (0: none taken up yet).
#[derive(Debug, Default)]
pub struct Following(AtomicU64);

impl Following {
    pub fn seq(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Loads the files `[models]` names into `engine` and publishes them (`by`: who publishes),
/// unless they are what is published already. Returns the versions in service.
pub fn load_and_publish(
    engine: &Engine,
    cfg: &ModelsConfig,
    by: &str,
    following: &Following,
) -> anyhow::Result<Vec<String>> {
    let bundle = ModelsBundle::read(cfg)?;
    let versions = bundle.install(engine)?;
    let store = engine.store();
    let published = store.publication(MODELS)?;
    let seq = match published {
        Some(p) if ModelsBundle::decode(p.seq, &p.body).ok().as_ref() == Some(&bundle) => p.seq,
        other => {
            if let Some(p) = other {
                tracing::warn!(
                    published = p.seq,
                    by = %p.by,
                    "the [models] files differ from the models in service: publishing them for every replica"
                );
            }
            store.publish(MODELS, by, engine.clock().now_ms(), &bundle.encode())?
        }
    };
    following.0.store(seq, Ordering::Release);
    Ok(versions)
}

/// At start: the files `[models]` names, published (see [`load_and_publish`]); without any,
/// what is published. Returns the versions in service, if any model is.
pub fn at_start(
    engine: &Engine,
    cfg: &ModelsConfig,
    by: &str,
    following: &Following,
) -> anyhow::Result<Option<Vec<String>>> {
    if *cfg != ModelsConfig::default() {
        return load_and_publish(engine, cfg, by, following).map(Some);
    }
    follow(engine, following).map_err(anyhow::Error::from)
}

/// Takes up a publication newer than the one `following` names. One that cannot be used is
/// logged and counted (`leadrouter_model_reloads_total{result="failed"}`) and not tried again;
/// the models in service stay. Errors only when storage cannot be read.
pub fn follow(engine: &Engine, following: &Following) -> Result<Option<Vec<String>>, StorageError> {
    let Some(p) = newer(engine, MODELS, following)? else {
        return Ok(None);
    };
    match ModelsBundle::decode(p.seq, &p.body).and_then(|b| b.install(engine)) {
        Ok(versions) => {
            metrics::counter!("leadrouter_model_reloads_total", "result" => "ok").increment(1);
            tracing::info!(?versions, published = p.seq, by = %p.by, "published models taken up");
            Ok(Some(versions))
        }
        Err(e) => {
            metrics::counter!("leadrouter_model_reloads_total", "result" => "failed").increment(1);
            tracing::error!(published = p.seq, by = %p.by, error = %format!("{e:#}"), "published models not taken up; the ones in service stay");
            Ok(None)
        }
    }
}

/// The name the rule sets in service are published under.
pub const RULES: &str = "rules";

/// The rule sets that carry money, as one publication (JSON): binding rule sets, ownership
/// rule sets and split policies, each by version and first day as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesBundle {
    pub bindings: Vec<crate::domain::binding::BindingRuleSet>,
    pub ownership: Vec<crate::attribution::rules::OwnershipRuleSet>,
    pub splits: Vec<crate::attribution::split::SplitPolicy>,
}

impl RulesBundle {
    /// The rule sets a configuration names.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            bindings: config.bindings.clone(),
            ownership: config.attribution.ownership.clone(),
            splits: config.attribution.splits.clone(),
        }
    }

    /// The rule sets in service.
    pub fn in_service(engine: &Engine, attribution: &Attribution) -> Self {
        let book = attribution.rules();
        Self {
            bindings: engine.bindings().sets(),
            ownership: book.ownership.iter().map(|(_, s)| s.clone()).collect(),
            splits: book.splits.iter().map(|(_, s)| s.clone()).collect(),
        }
    }

    /// Checks every rule set as at start; the message names the key.
    pub fn check(&self, attribution: &Attribution) -> anyhow::Result<()> {
        crate::engine::check_bindings(&self.bindings).map_err(anyhow::Error::msg)?;
        crate::attribution::AttributionConfig {
            ownership: self.ownership.clone(),
            splits: self.splits.clone(),
            ..attribution.config().clone()
        }
        .check()
        .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// Checks every rule set, then puts them all in service.
    pub fn install(&self, engine: &Engine, attribution: &Attribution) -> anyhow::Result<()> {
        self.check(attribution)?;
        engine
            .set_binding_rules(&self.bindings)
            .map_err(anyhow::Error::msg)?;
        attribution
            .set_rules(&self.ownership, &self.splits)
            .map_err(anyhow::Error::msg)
    }

    /// The versions, for logs: `bindings v1,v2; ownership …; splits …`.
    pub fn versions(&self) -> String {
        let v = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(",");
        format!(
            "bindings {}; ownership {}; splits {}",
            v(&mut self.bindings.iter().map(|s| s.version.as_str())),
            v(&mut self.ownership.iter().map(|s| s.version.as_str())),
            v(&mut self.splits.iter().map(|s| s.version.as_str())),
        )
    }

    fn decode(seq: u64, body: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(body)
            .with_context(|| format!("published rules #{seq} cannot be read"))
    }
}

/// Publishes `rules` for every replica (`by`: who publishes), audited (entry first, as a
/// network change is), unless they are what is published already; returns the publication.
pub fn publish_rules(
    engine: &Engine,
    rules: &RulesBundle,
    by: &str,
    following: &Following,
) -> anyhow::Result<u64> {
    let store = engine.store();
    let published = store.publication(RULES)?;
    if let Some(p) = &published
        && RulesBundle::decode(p.seq, &p.body).ok().as_ref() == Some(rules)
    {
        following.0.store(p.seq, Ordering::Release);
        return Ok(p.seq);
    }
    if let Some(p) = &published {
        tracing::warn!(published = p.seq, by = %p.by, rules = %rules.versions(), "the configured rule sets differ from those in service: publishing them for every replica");
    }
    let body = serde_json::to_vec(rules).expect("plain data serializes");
    engine.record_audit(
        "rules.publish",
        "rules",
        by,
        "rule sets published for every replica",
        serde_json::to_value(rules).expect("plain data serializes"),
    )?;
    let seq = store.publish(RULES, by, engine.clock().now_ms(), &body)?;
    following.0.store(seq, Ordering::Release);
    Ok(seq)
}

/// At start, after the engine and attribution were made with the configured rule sets: a
/// configuration that names rule sets publishes them; one that does not serves the rule sets
/// in service (published by another replica), if any.
pub fn rules_at_start(
    engine: &Engine,
    attribution: &Attribution,
    config: &crate::config::Config,
    by: &str,
    following: &Following,
) -> anyhow::Result<()> {
    if config.names_rules {
        let seq = publish_rules(engine, &RulesBundle::of(config), by, following)?;
        tracing::info!(published = seq, "rule sets in service");
        return Ok(());
    }
    follow_rules(engine, attribution, following)?;
    Ok(())
}

/// Takes up published rule sets newer than the ones `following` names, checked first: ones
/// that cannot be used are logged and counted (`leadrouter_rule_reloads_total{result="failed"}`)
/// and not tried again; the ones in service stay. Errors only when storage cannot be read.
pub fn follow_rules(
    engine: &Engine,
    attribution: &Attribution,
    following: &Following,
) -> Result<bool, StorageError> {
    let Some(p) = newer(engine, RULES, following)? else {
        return Ok(false);
    };
    match RulesBundle::decode(p.seq, &p.body).and_then(|r| {
        r.install(engine, attribution)?;
        Ok(r)
    }) {
        Ok(r) => {
            metrics::counter!("leadrouter_rule_reloads_total", "result" => "ok").increment(1);
            tracing::info!(rules = %r.versions(), published = p.seq, by = %p.by, "published rule sets taken up");
            Ok(true)
        }
        Err(e) => {
            metrics::counter!("leadrouter_rule_reloads_total", "result" => "failed").increment(1);
            tracing::error!(published = p.seq, by = %p.by, error = %format!("{e:#}"), "published rule sets not taken up; the ones in service stay");
            Ok(false)
        }
    }
}

/// On SIGHUP: the rule sets the configuration file names now, checked, published and put in
/// service; a file that cannot be read or used changes nothing.
pub fn reload_rules(
    engine: &Engine,
    attribution: &Attribution,
    source: &Path,
    by: &str,
    following: &Following,
) -> anyhow::Result<Option<String>> {
    let config = crate::config::Config::from_file(source).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !config.names_rules {
        return Ok(None);
    }
    let rules = RulesBundle::of(&config);
    rules.check(attribution)?;
    if rules == RulesBundle::in_service(engine, attribution) {
        return Ok(None);
    }
    publish_rules(engine, &rules, by, following)?;
    rules.install(engine, attribution)?;
    Ok(Some(rules.versions()))
}

/// The publication under `name` if it is newer than the one `following` names, which then
/// names it (whether or not it can be used: it is not tried again).
fn newer(
    engine: &Engine,
    name: &str,
    following: &Following,
) -> Result<Option<crate::storage::Publication>, StorageError> {
    let store = engine.store();
    if store.publication_seq(name)? <= following.seq() {
        return Ok(None);
    }
    let Some(p) = store.publication(name)? else {
        return Ok(None);
    };
    following.0.store(p.seq, Ordering::Release);
    Ok(Some(p))
}
