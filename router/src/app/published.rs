//! The learned models in service on every replica. A replica that loads the artifacts
//! `[models]` names (at start, or on SIGHUP) puts them in service and publishes them in
//! storage ([`crate::storage::Networks::publish`]); every replica takes up a newer publication
//! within [`crate::server::REFRESH_EVERY`] (at once on PostgreSQL, which notifies), checked
//! first like a file: one that cannot be used is logged and counted, and the models in service
//! stay. A replica started without `[models]` serves what is published.

use super::models::{member_segments_in, parse_preference, parse_propensity};
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
}

impl ModelsBundle {
    /// Reads the files `[models]` names.
    pub fn read(cfg: &ModelsConfig) -> anyhow::Result<Self> {
        let read = |p: &Option<std::path::PathBuf>| p.as_deref().map(Artifact::read).transpose();
        Ok(Self {
            preference: read(&cfg.preference)?,
            propensity: read(&cfg.propensity)?,
            segments: read(&cfg.segments)?,
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
    let store = engine.store();
    if store.publication_seq(MODELS)? <= following.seq() {
        return Ok(None);
    }
    let Some(p) = store.publication(MODELS)? else {
        return Ok(None);
    };
    following.0.store(p.seq, Ordering::Release);
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
