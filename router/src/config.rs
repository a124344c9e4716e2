//! The service's configuration: a TOML file (every key optional, unknown keys rejected), then
//! environment overrides read through [`Env`] (so tests pass a map), then command-line flags.
//!
//! ```toml
//! listen = "127.0.0.1:50051"      # gRPC and HTTP on one port
//! data_dir = "leadrouter-data"    # sled's directory
//! network = "path/to/network"     # a directory of stores.csv, guides.csv, preference.csv
//! time_zone = "Asia/Shanghai"     # business days for capacity
//!
//! [storage]
//! backend = "sled"                # sled (embedded, one process) | postgres (several replicas)
//! url = "postgres://leadrouter@db:5432/leadrouter"  # postgres only; or LEADROUTER_DATABASE_URL
//! pool_size = 16                  # postgres only: connections per replica
//! synchronous_commit = false      # postgres only: true makes decisions and touches wait for
//!                                 # the WAL flush too (orders, refunds, audit always do)
//! connect_timeout_ms = 5000       # postgres only: wait for a connection at most this long
//! ca_file = "/etc/leadrouter/db-ca.pem"  # postgres only: TLS to the database, verified
//! cache_capacity_mb = 256         # sled page cache cap
//! flush_every_ms = 100            # routing decisions are durable within this interval
//! sync_decisions = false          # true: flush before every reply
//! binding_cache = 100000          # members whose latest binding is kept in memory (0: off);
//!                                 # on postgres, members whose head a route starts from
//!
//! [routing]
//! min_stores = 3                  # stop walking up the region tree at this many stores
//! max_stores = 16                 # stores scored per lead at most
//! radius_km = 0                   # search this radius first when the lead has coordinates
//! max_level = "nationwide"        # district | city | province | nationwide
//! regional_taste = 0.2            # weight of the lead's regional taste (its region's matrix row)
//!                                 # next to its stated interests; taste alone when it states none
//! alternatives = 5
//! seed = 514662438                # tie-break draws
//!
//! [policy]
//! name = "scored"                 # scored | nearest | round_robin | dual_price | balance | ranking
//! preference = 0.4                # scored only: weights and distance scale
//! distance = 0.3
//! tier = 0.1
//! load = 0.2
//! distance_scale_km = 8.0
//! propensity = 0.5                # weight of the learned propensity ([models] propensity)
//! skill = 0.2                     # weight of the guide's learned skill lift ([models] skill)
//! floor = 0.0                     # scored, dual_price: guides under floor × peers' mean load first
//!
//! [[experiments]]                 # split traffic between policies (see policy::experiments)
//! name = "explore-2026-12"
//! unit = "member"                 # member | lead
//! [[experiments.arms]]
//! name = "control"
//! share = 0.9
//! policy = { name = "scored" }
//! [[experiments.arms]]
//! name = "softmax"
//! share = 0.1
//! policy = { name = "softmax", temperature = 0.05 }
//!
//! [attribution]
//! max_order_amount_cents = 100000000
//! max_future_secs = 300
//! history_limit = 10000
//!
//! [[attribution.ownership]]      # rule sets by effective date (business day)
//! version = "ownership-v1"
//! effective_from = "2000-01-01"
//! protection_days = 30
//! service_guide_first = false
//! lookback_days = 7
//! qualifying = ["SHARE_LINK_CLICK", "LIVESTREAM_VIEW", "GUIDE_CHAT", "STORE_VISIT", "COUPON_CLAIM", "BINDING"]
//!
//! [[attribution.splits]]         # split policies by effective date
//! version = "361"
//! effective_from = "2000-01-01"
//! owner = 30
//! fulfilling_store = 60
//! o2o_centre = 10
//! referrer_1 = 0
//! referrer_2 = 0
//! rounding = "fulfilling_store"
//! ```

use crate::attribution::AttributionConfig;
use crate::domain::binding::BindingRuleSet;
use crate::domain::offer::OfferConfig;
use crate::engine::TransferConfig;
use crate::engine::{CandidateConfig, EngineConfig};
use crate::policy::PolicyConfig;
use crate::storage::{PostgresConfig, SledConfig};

/// The storage backend a configuration chooses.
#[derive(Debug, Clone)]
pub enum Backend {
    Sled(SledConfig),
    Postgres(PostgresConfig),
}
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where environment variables come from.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub network: Option<PathBuf>,
    pub time_zone: String,
    pub storage: StorageConfig,
    pub routing: RoutingConfig,
    pub policy: PolicyConfig,
    pub attribution: AttributionConfig,
    /// Binding rule sets (`[[bindings]]`).
    pub bindings: Vec<BindingRuleSet>,
    /// Offers (`[offers]`).
    pub offers: OfferConfig,
    /// Transfers (`[transfers]`).
    pub transfers: TransferConfig,
    /// Experiments (`[[experiments]]`).
    pub experiments: Vec<crate::policy::experiments::ExperimentConfig>,
    /// Learned model artifacts (`[models]`).
    pub models: ModelsConfig,
    /// Callers' keys (`[auth]`).
    pub auth: AuthConfig,
    /// TLS on the service port (`[tls]`).
    pub tls: TlsConfig,
    /// Connection, message, time and rate limits (`[limits]`).
    pub limits: LimitsConfig,
    /// Serve `/metrics` (without a key) on this address too, e.g. an address only the
    /// monitoring network reaches; on the service port it always needs a key.
    pub metrics_listen: Option<String>,
    /// The file it was read from (re-read on SIGHUP for its rule sets).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Whether the text names rule sets (`[[bindings]]`, `[[attribution.ownership]]`,
    /// `[[attribution.splits]]`): only then does a replica publish them for every replica;
    /// otherwise it serves the rule sets in service.
    #[serde(skip)]
    pub names_rules: bool,
}

/// `[auth]`: who may call.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `auto`: keys when `keys_file` is set, else open on a loopback address and refused on any
    /// other; `keys`: keys required; `open`: no keys at all (every start logs a warning).
    pub mode: AuthMode,
    /// The keys file (`leadrouter keys add --keys-file …`), re-read on SIGHUP.
    pub keys_file: Option<PathBuf>,
    /// Requests per second per key, unless its record says otherwise (token bucket).
    pub rate_per_sec: f64,
    /// Bucket depth: requests a key may make at once after a quiet spell.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    Auto,
    Keys,
    Open,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Auto,
            keys_file: None,
            rate_per_sec: 1000.0,
            burst: 2000.0,
        }
    }
}

/// `[tls]`: PEM files; with `cert` and `key` the port speaks only TLS (ALPN h2 and http/1.1).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA whose certificates clients must present (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// `[limits]`: what one caller can hold.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request message, decoded (gRPC) or as a body (HTTP).
    pub max_message_bytes: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Connections open at once, in all; more are closed as they arrive.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_peer: usize,
    /// Requests being served at once, in all (each may hold up to `max_message_bytes` of body
    /// while it is read); more are refused with RESOURCE_EXHAUSTED until some finish.
    pub max_requests_in_flight: usize,
    /// Offer streams (gRPC `Guides.WatchOffers` and `GET /v1/offers/events`) open at once on
    /// this replica; more are refused with RESOURCE_EXHAUSTED. They do not count as requests
    /// in flight once their headers are sent.
    pub max_watchers: usize,
    /// A request (its body included) must be answered within this, or it is cancelled.
    pub request_timeout_ms: u64,
    /// A connection with no request for this long is closed.
    pub idle_timeout_secs: u64,
    /// A new connection must finish its TLS handshake and send a first request, and HTTP/1.1
    /// headers must arrive, within this.
    pub header_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_concurrent_streams: 100,
            max_connections: 4096,
            max_connections_per_peer: 256,
            max_requests_in_flight: 2048,
            max_watchers: crate::server::watch::DEFAULT_MAX_WATCHERS,
            request_timeout_ms: 30_000,
            idle_timeout_secs: 120,
            header_timeout_ms: 10_000,
        }
    }
}

impl LimitsConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        let range = |key: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError(format!(
                    "limits.{key}: must be in {lo}..={hi}, got {v}"
                )))
            }
        };
        range(
            "max_message_bytes",
            self.max_message_bytes as u64,
            1024,
            64 << 20,
        )?;
        range(
            "max_concurrent_streams",
            u64::from(self.max_concurrent_streams),
            1,
            10_000,
        )?;
        range("max_connections", self.max_connections as u64, 1, 1_000_000)?;
        range(
            "max_connections_per_peer",
            self.max_connections_per_peer as u64,
            1,
            1_000_000,
        )?;
        range(
            "max_requests_in_flight",
            self.max_requests_in_flight as u64,
            1,
            1_000_000,
        )?;
        range("max_watchers", self.max_watchers as u64, 1, 1_000_000)?;
        range("request_timeout_ms", self.request_timeout_ms, 10, 3_600_000)?;
        range("idle_timeout_secs", self.idle_timeout_secs, 1, 86_400)?;
        range("header_timeout_ms", self.header_timeout_ms, 10, 600_000)?;
        Ok(())
    }
}

impl AuthConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        for (key, v) in [("rate_per_sec", self.rate_per_sec), ("burst", self.burst)] {
            if !(v.is_finite() && (1.0..=1e7).contains(&v)) {
                return Err(ConfigError(format!(
                    "auth.{key}: must be in 1..=1e7, got {v}"
                )));
            }
        }
        if self.mode == AuthMode::Keys && self.keys_file.is_none() {
            return Err(ConfigError(
                "auth.keys_file: mode = \"keys\" needs a keys file (make one with `leadrouter keys add`)".into(),
            ));
        }
        Ok(())
    }
}

/// `[models]`: learned artifacts loaded at start and again on SIGHUP.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// A preference artifact (`leadrouter models preference --out …`); without it the network's
    /// shipped matrix is used.
    pub preference: Option<PathBuf>,
    /// A propensity artifact (`leadrouter models propensity --out …`): `scored` adds its
    /// probability of conversion (weight `policy.propensity`).
    pub propensity: Option<PathBuf>,
    /// Members' segments (`member_id,segment`, as `leadrouter models segments --assignments`
    /// writes them), for policies to read.
    pub segments: Option<PathBuf>,
    /// Guide skill (`leadrouter models skill --out …`): `scored`, `softmax` and `dual_price` add
    /// `skill · lift` to their value estimate (weight `policy.skill`).
    pub skill: Option<PathBuf>,
    /// Capacity prices (`leadrouter models prices --out …`), the base prices of `dual_price`.
    pub prices: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: String,
    pub url: Option<String>,
    pub pool_size: usize,
    pub synchronous_commit: bool,
    pub connect_timeout_ms: u64,
    pub ca_file: Option<PathBuf>,
    pub cache_capacity_mb: u64,
    pub flush_every_ms: u64,
    pub sync_decisions: bool,
    pub binding_cache: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    pub min_stores: usize,
    pub max_stores: usize,
    pub radius_km: f64,
    pub max_level: String,
    pub regional_taste: f64,
    pub alternatives: usize,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            data_dir: PathBuf::from("leadrouter-data"),
            network: None,
            time_zone: "Asia/Shanghai".into(),
            storage: StorageConfig::default(),
            routing: RoutingConfig::default(),
            policy: PolicyConfig::default(),
            attribution: AttributionConfig::default(),
            bindings: vec![BindingRuleSet::default()],
            offers: OfferConfig::default(),
            transfers: TransferConfig::default(),
            experiments: Vec::new(),
            models: ModelsConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            metrics_listen: None,
            source: None,
            names_rules: false,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: "sled".into(),
            url: None,
            pool_size: 16,
            synchronous_commit: false,
            connect_timeout_ms: 5_000,
            ca_file: None,
            cache_capacity_mb: 256,
            flush_every_ms: 100,
            sync_decisions: false,
            binding_cache: 100_000,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        let c = CandidateConfig::default();
        let e = EngineConfig::default();
        Self {
            min_stores: c.min_stores,
            max_stores: c.max_stores,
            radius_km: c.radius_km,
            max_level: c.max_level,
            regional_taste: c.regional_taste,
            alternatives: e.alternatives,
            seed: e.seed,
        }
    }
}

impl Config {
    /// Parses a TOML text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Self =
            toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        let table: toml::Table = toml::from_str(text).unwrap_or_default();
        let attribution = table.get("attribution").and_then(|a| a.as_table());
        config.names_rules = table.contains_key("bindings")
            || attribution.is_some_and(|a| a.contains_key("ownership") || a.contains_key("splits"));
        Ok(config)
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let mut config = Self::from_toml(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Applies `LEADROUTER_LISTEN`, `LEADROUTER_DATA_DIR`, `LEADROUTER_NETWORK`,
    /// `LEADROUTER_POLICY` (a policy name, default parameters), `LEADROUTER_DATABASE_URL`
    /// (`storage.url`; a URL selects the postgres backend) and `LEADROUTER_DATABASE_CA`
    /// (`storage.ca_file`).
    pub fn apply_env(&mut self, env: &dyn Env) -> Result<(), ConfigError> {
        if let Some(v) = env.var(crate::storage::DATABASE_URL_ENV) {
            self.storage.url = Some(v);
            self.storage.backend = "postgres".into();
        }
        if let Some(v) = env.var(crate::storage::DATABASE_CA_ENV) {
            self.storage.ca_file = Some(v.into());
        }
        if let Some(v) = env.var("LEADROUTER_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env.var("LEADROUTER_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env.var("LEADROUTER_NETWORK") {
            self.network = Some(v.into());
        }
        if let Some(v) = env.var("LEADROUTER_POLICY") {
            self.policy = toml::from_str(&format!("name = {v:?}")).map_err(|_| {
                ConfigError(format!(
                    "LEADROUTER_POLICY: must be one of {}, got {v:?}",
                    PolicyConfig::NAMES.join(", ")
                ))
            })?;
        }
        Ok(())
    }

    /// The engine's settings.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        let time_zone: chrono_tz::Tz = self.time_zone.parse().map_err(|_| {
            ConfigError(format!(
                "time_zone: unknown IANA time zone {:?} (e.g. Asia/Shanghai)",
                self.time_zone
            ))
        })?;
        let candidates = CandidateConfig {
            min_stores: self.routing.min_stores,
            max_stores: self.routing.max_stores,
            radius_km: self.routing.radius_km,
            max_level: self.routing.max_level.clone(),
            regional_taste: self.routing.regional_taste,
        };
        candidates.check().map_err(ConfigError)?;
        Ok(EngineConfig {
            time_zone,
            candidates,
            policy: self.policy.clone(),
            seed: self.routing.seed,
            alternatives: self.routing.alternatives,
            sync_decisions: self.storage.sync_decisions,
            bindings: {
                crate::engine::check_bindings(&self.bindings).map_err(ConfigError)?;
                self.bindings.clone()
            },
            offers: {
                self.offers.check().map_err(ConfigError)?;
                self.offers.clone()
            },
            transfers: {
                self.transfers.check().map_err(ConfigError)?;
                self.transfers.clone()
            },
            experiments: self.experiments.clone(),
        })
    }

    /// The backend chosen and its settings, checked.
    pub fn backend(&self) -> Result<Backend, ConfigError> {
        match self.storage.backend.as_str() {
            "sled" => {
                if self.storage.url.is_some() {
                    return Err(ConfigError(
                        "storage.url: only with backend = \"postgres\" (the sled backend \
                         keeps its data in data_dir)"
                            .into(),
                    ));
                }
                self.sled().map(Backend::Sled)
            }
            "postgres" => {
                let url = self.storage.url.clone().ok_or_else(|| {
                    ConfigError(format!(
                        "storage.url: required with backend = \"postgres\" (or set {})",
                        crate::storage::DATABASE_URL_ENV
                    ))
                })?;
                if let Err(e) = url.parse::<tokio_postgres::Config>() {
                    return Err(ConfigError(format!(
                        "storage.url: not a PostgreSQL connection string ({e})"
                    )));
                }
                if !(1..=1024).contains(&self.storage.pool_size) {
                    return Err(ConfigError(format!(
                        "storage.pool_size: must be in 1..=1024, got {}",
                        self.storage.pool_size
                    )));
                }
                if !(100..=600_000).contains(&self.storage.connect_timeout_ms) {
                    return Err(ConfigError(format!(
                        "storage.connect_timeout_ms: must be in 100..=600000, got {}",
                        self.storage.connect_timeout_ms
                    )));
                }
                Ok(Backend::Postgres(PostgresConfig {
                    url,
                    pool_size: self.storage.pool_size,
                    synchronous_commit: self.storage.synchronous_commit,
                    connect_timeout: std::time::Duration::from_millis(
                        self.storage.connect_timeout_ms,
                    ),
                    ca_file: self.storage.ca_file.clone(),
                    seen_members: self.storage.binding_cache,
                }))
            }
            other => Err(ConfigError(format!(
                "storage.backend: must be \"sled\" or \"postgres\", got {other:?}"
            ))),
        }
    }

    /// sled's settings.
    pub fn sled(&self) -> Result<SledConfig, ConfigError> {
        if !(1..=1_048_576).contains(&self.storage.cache_capacity_mb) {
            return Err(ConfigError(format!(
                "storage.cache_capacity_mb: must be in 1..=1048576, got {}",
                self.storage.cache_capacity_mb
            )));
        }
        if !(1..=60_000).contains(&self.storage.flush_every_ms) {
            return Err(ConfigError(format!(
                "storage.flush_every_ms: must be in 1..=60000, got {}",
                self.storage.flush_every_ms
            )));
        }
        if self.storage.binding_cache > 10_000_000 {
            return Err(ConfigError(format!(
                "storage.binding_cache: must be in 0..=10000000 members, got {}",
                self.storage.binding_cache
            )));
        }
        Ok(SledConfig {
            cache_capacity: self.storage.cache_capacity_mb * 1024 * 1024,
            flush_every_ms: self.storage.flush_every_ms,
            binding_cache: self.storage.binding_cache,
            ..SledConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file_and_env() {
        let c = Config::from_toml("", "x").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.engine().unwrap().time_zone, chrono_tz::Asia::Shanghai);
        let mut c = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\n[routing]\nmin_stores = 2\n[policy]\nname = \"nearest\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.routing.min_stores, 2);
        assert_eq!(c.policy, PolicyConfig::Nearest);
        let env: HashMap<String, String> = [
            ("LEADROUTER_LISTEN".to_string(), "127.0.0.1:1".to_string()),
            ("LEADROUTER_POLICY".to_string(), "round_robin".to_string()),
        ]
        .into();
        c.apply_env(&env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.policy, PolicyConfig::RoundRobin);
    }

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let text = include_str!("../../ops/leadrouter.toml");
        let mut shipped = Config::from_toml(text, "ops/leadrouter.toml").unwrap();
        // It names the rule sets (the defaults), so a replica started with it publishes them.
        assert!(shipped.names_rules);
        shipped.names_rules = false;
        assert_eq!(shipped, Config::default());
    }

    #[test]
    fn rule_sets_are_named_only_where_the_text_names_them() {
        let names = |text: &str| Config::from_toml(text, "t").unwrap().names_rules;
        assert!(!names(""));
        assert!(!names(
            "[policy]\nname = \"nearest\"\n[attribution]\nhistory_limit = 10\n"
        ));
        assert!(names("[[bindings]]\nversion = \"b\"\n"));
        assert!(names("[[attribution.ownership]]\nversion = \"o\"\n"));
        assert!(names("[[attribution.splits]]\nversion = \"s\"\n"));
    }

    #[test]
    fn attribution_rules_come_from_the_file() {
        let c = Config::from_toml(
            "[[attribution.splits]]\nversion = \"stage2\"\neffective_from = \"2026-06-01\"\nowner = 25\nfulfilling_store = 70\no2o_centre = 5\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.attribution.splits.len(), 1);
        assert_eq!(c.attribution.splits[0].owner, 25);
        c.attribution.check().unwrap();
        let e = Config::from_toml("[[attribution.splits]]\nowner = 40\n", "x").unwrap();
        assert!(
            e.attribution
                .check()
                .unwrap_err()
                .contains("attribution.splits[0]: shares must sum to 100")
        );
        assert!(
            Config::from_toml("[[attribution.ownership]]\nqualifying = [\"HUG\"]\n", "x")
                .unwrap_err()
                .0
                .contains("HUG")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[storage]\ncache_mb = 1\n", "leadrouter.toml").unwrap_err();
        assert!(
            e.0.contains("leadrouter.toml") && e.0.contains("cache_mb"),
            "{e}"
        );
        let c = Config {
            time_zone: "Mars/Olympus".into(),
            ..Config::default()
        };
        assert!(c.engine().unwrap_err().0.starts_with("time_zone:"));
        let mut c = Config::default();
        c.routing.max_level = "galaxy".into();
        assert!(c.engine().unwrap_err().0.starts_with("routing.max_level:"));
        let mut c = Config::default();
        c.storage.flush_every_ms = 0;
        assert!(
            c.sled()
                .unwrap_err()
                .0
                .starts_with("storage.flush_every_ms:")
        );
        let mut c = Config::default();
        c.storage.binding_cache = 20_000_000;
        assert!(
            c.sled()
                .unwrap_err()
                .0
                .starts_with("storage.binding_cache:")
        );
        c.storage.binding_cache = 0;
        assert_eq!(c.sled().unwrap().binding_cache, 0);
        let env: HashMap<String, String> =
            [("LEADROUTER_POLICY".to_string(), "best".to_string())].into();
        let e = Config::default().apply_env(&env).unwrap_err();
        assert!(e.0.starts_with("LEADROUTER_POLICY:"), "{e}");
    }

    #[test]
    fn the_backend_is_chosen_and_checked() {
        assert!(matches!(
            Config::default().backend().unwrap(),
            Backend::Sled(_)
        ));
        let c = Config::from_toml(
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://u:secret@db:5432/lr\"\npool_size = 4\nsynchronous_commit = true\n",
            "x",
        )
        .unwrap();
        let Backend::Postgres(p) = c.backend().unwrap() else {
            panic!("postgres chosen")
        };
        assert_eq!((p.pool_size, p.synchronous_commit), (4, true));
        assert!(!format!("{p:?}").contains("secret"), "{p:?}");
        let refused = |toml: &str, field: &str| {
            let e = Config::from_toml(toml, "x").unwrap().backend().unwrap_err();
            assert!(e.0.starts_with(field), "{e}");
        };
        refused("[storage]\nbackend = \"postgres\"\n", "storage.url:");
        refused("[storage]\nbackend = \"mysql\"\n", "storage.backend:");
        refused("[storage]\nurl = \"postgres://db/lr\"\n", "storage.url:");
        refused(
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://db/lr\"\npool_size = 0\n",
            "storage.pool_size:",
        );
        refused(
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://db:notaport/lr\"\n",
            "storage.url:",
        );
        // The environment's URL selects PostgreSQL.
        let mut c = Config::default();
        let env: HashMap<String, String> = [(
            "LEADROUTER_DATABASE_URL".to_string(),
            "postgres://lr@127.0.0.1/lr".to_string(),
        )]
        .into();
        c.apply_env(&env).unwrap();
        assert!(matches!(c.backend().unwrap(), Backend::Postgres(_)));
    }
}
