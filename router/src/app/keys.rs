//! `leadrouter keys add | list | revoke`: the operator's commands on a keys file. A new key is
//! printed once and kept nowhere; the file holds its hash. The server reads the file again on
//! SIGHUP.

use crate::auth::{KeysFile, Role};
use anyhow::Context;
use std::path::Path;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn read(path: &Path, missing_ok: bool) -> anyhow::Result<KeysFile> {
    KeysFile::read(path, missing_ok).with_context(|| format!("--keys-file {}", path.display()))
}

/// Makes a key, appends its record (creating the file if needed) and returns the key.
pub fn add(path: &Path, name: &str, role: &str, stores: &[String]) -> anyhow::Result<String> {
    let role = Role::parse(role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    let mut file = read(path, true)?;
    let key = file
        .add(name, role, stores.to_vec(), now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    file.write(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// One line per key: name, role, stores, created, revoked.
pub fn list(path: &Path) -> anyhow::Result<String> {
    let file = read(path, false)?;
    let mut out = format!(
        "{:<24} {:<14} {:<20} {:<21} {}\n",
        "name", "role", "stores", "created", "revoked"
    );
    for k in &file.keys {
        out.push_str(&format!(
            "{:<24} {:<14} {:<20} {:<21} {}\n",
            k.name,
            k.role,
            if k.stores.is_empty() {
                "all".to_string()
            } else {
                k.stores.join(",")
            },
            k.created,
            k.revoked.as_deref().unwrap_or("-")
        ));
    }
    Ok(out.trim_end().to_string())
}

/// Marks a key revoked (the record stays, so the name is not reused by mistake).
pub fn revoke(path: &Path, name: &str) -> anyhow::Result<()> {
    let mut file = read(path, false)?;
    file.revoke(name, now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    file.write(path)
        .with_context(|| format!("writing {}", path.display()))
}
