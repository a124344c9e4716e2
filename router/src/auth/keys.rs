//! The keys file (TOML, one `[[key]]` table per key, hashes only) and the in-memory keyring.

use super::{Principal, Role};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One key as the file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Unique; the actor recorded on the key's writes. 1..=64 of `A-Z a-z 0-9 . _ : -`.
    pub name: String,
    pub role: Role,
    /// Store ids the key is limited to (only for guide_app, operator, reviewer); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// RFC 3339, when the key was made.
    pub created: String,
    /// RFC 3339, when it was revoked; a revoked key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// Requests per second this key may make (token bucket; burst twice as many); default
    /// `[auth] rate_per_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyRecord>,
}

/// A keys file that cannot be used. Messages name the record and field, never a hash or a key.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("the keys file cannot be read: {0}")]
    Read(std::io::ErrorKind),
    #[error("the keys file is not valid TOML: {0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

const HEADER: &str = "# leadrouter keys: one [[key]] per caller. Only hashes are kept here; a key is shown once,\n\
# by `leadrouter keys add`. Revoke with `leadrouter keys revoke --name NAME`, then SIGHUP the server.\n";

/// A new random key: `lrk_` and 64 hex digits from the OS's generator.
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("lrk_{}", hex::encode(bytes))
}

/// Hex SHA-256 of a key as presented.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("name: must be 1..=64 bytes, got {}", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "name: must be letters, digits, '.', '_', ':' or '-', found {c:?}"
        ));
    }
    Ok(())
}

impl KeyRecord {
    fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if !self.stores.is_empty() && !self.role.scopable() {
            return Err(format!(
                "stores: only guide_app, operator and reviewer keys are limited to stores, not {}",
                self.role
            ));
        }
        for (i, s) in self.stores.iter().enumerate() {
            crate::domain::check_id(&format!("stores[{i}]"), s).map_err(|e| e.to_string())?;
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256: must be 64 hex digits".into());
        }
        if let Some(r) = self.rate_per_sec
            && !(r.is_finite() && r > 0.0 && r <= 1e6)
        {
            return Err(format!("rate_per_sec: must be in (0, 1e6], got {r}"));
        }
        Ok(())
    }
}

impl KeysFile {
    pub fn parse(text: &str) -> Result<Self, KeysFileError> {
        let file: KeysFile =
            toml::from_str(text).map_err(|e| KeysFileError::Parse(e.message().to_string()))?;
        file.check()?;
        Ok(file)
    }

    /// Reads a keys file; a missing file is an empty one only when `missing_ok`.
    pub fn read(path: &Path, missing_ok: bool) -> Result<Self, KeysFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(KeysFileError::Read(e.kind())),
        }
    }

    fn check(&self) -> Result<(), KeysFileError> {
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            k.check()
                .map_err(|e| KeysFileError::Invalid(format!("key[{i}] ({:?}): {e}", k.name)))?;
            if !names.insert(k.name.as_str()) {
                return Err(KeysFileError::Invalid(format!(
                    "key[{i}]: name {:?} is used twice",
                    k.name
                )));
            }
            if !hashes.insert(k.sha256.to_ascii_lowercase()) {
                return Err(KeysFileError::Invalid(format!(
                    "key[{i}] ({:?}): the same key is listed twice",
                    k.name
                )));
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        // Plain structs of strings always serialise.
        format!("{HEADER}\n{}", toml::to_string(self).unwrap_or_default())
    }

    /// Writes the whole file atomically (a temporary beside it, then a rename), readable by
    /// its owner only.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(self.to_toml().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Makes a key and adds its record; returns the key, which is kept nowhere.
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        stores: Vec<String>,
        now_rfc3339: String,
    ) -> Result<String, KeysFileError> {
        let key = new_key();
        self.keys.push(KeyRecord {
            name: name.to_string(),
            role,
            stores,
            sha256: hash_key(&key),
            created: now_rfc3339,
            revoked: None,
            rate_per_sec: None,
        });
        if let Err(e) = self.check() {
            self.keys.pop();
            return Err(e);
        }
        Ok(key)
    }

    /// Marks the named key revoked; an unknown or already revoked name is an error.
    pub fn revoke(&mut self, name: &str, now_rfc3339: String) -> Result<(), KeysFileError> {
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.name == name)
            .ok_or_else(|| KeysFileError::Invalid(format!("no key is named {name:?}")))?;
        if k.revoked.is_some() {
            return Err(KeysFileError::Invalid(format!(
                "key {name:?} is already revoked"
            )));
        }
        k.revoked = Some(now_rfc3339);
        Ok(())
    }
}

/// The keys in service, by hash.
#[derive(Debug, Default)]
pub struct Keyring {
    by_hash: HashMap<String, (Arc<Principal>, Option<f64>)>,
}

impl Keyring {
    pub fn from_file(file: &KeysFile) -> Self {
        let by_hash = file
            .keys
            .iter()
            .filter(|k| k.revoked.is_none())
            .map(|k| {
                (
                    k.sha256.to_ascii_lowercase(),
                    (
                        Arc::new(Principal {
                            name: k.name.clone(),
                            role: k.role,
                            stores: k.stores.clone(),
                            open: false,
                        }),
                        k.rate_per_sec,
                    ),
                )
            })
            .collect();
        Self { by_hash }
    }

    /// The principal of a presented key, with its own rate when it has one.
    pub fn lookup(&self, key: &str) -> Option<(Arc<Principal>, Option<f64>)> {
        self.by_hash.get(&hash_key(key)).cloned()
    }

    /// The principal of the key named `name` and that key's stored hash (a secret only the
    /// service holds: it signs the key's review sessions).
    pub fn by_name(&self, name: &str) -> Option<(Arc<Principal>, String)> {
        self.by_hash
            .iter()
            .find(|(_, (p, _))| p.name == name)
            .map(|(h, (p, _))| (p.clone(), h.clone()))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}
