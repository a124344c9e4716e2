//! Callers' keys and what they may do: roles, store scopes, the keys file and the principal a
//! call runs as. Transport-free: `server::auth` applies it to gRPC and HTTP.
//!
//! A key is `lrk_` and 64 hex digits (32 random bytes from the OS), shown once when made. The
//! keys file holds only its SHA-256, so a copy of the file lets nobody call the service. Keys
//! are high-entropy secrets, so a plain hash is as strong as a slow one would be.

mod keys;
mod permissions;
mod rate;

pub use keys::{KeyRecord, Keyring, KeysFile, KeysFileError, new_key};
pub use permissions::{Access, PERMISSIONS, Permission, permission};
pub use rate::RateLimiter;

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a key may do. One key, one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The mini-program backend: routes leads, records touches, orders and refunds, reads
    /// trails and ownership.
    RouterClient,
    /// The guides' app backend: answers offers, reads guides' loads.
    GuideApp,
    /// Store operations: catalog changes and transfers.
    Operator,
    /// Dispute reviewers: evidence and resolutions.
    Reviewer,
    /// Read only: exports, ledger, trails, audit.
    Analyst,
    /// Reads `/metrics` on the service port.
    Monitoring,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::RouterClient,
        Role::GuideApp,
        Role::Operator,
        Role::Reviewer,
        Role::Analyst,
        Role::Monitoring,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::RouterClient => "router_client",
            Role::GuideApp => "guide_app",
            Role::Operator => "operator",
            Role::Reviewer => "reviewer",
            Role::Analyst => "analyst",
            Role::Monitoring => "monitoring",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "must be one of {}, got {}",
                    Self::ALL.map(Role::as_str).join(", "),
                    short(s)
                )
            })
    }

    /// Roles whose keys may be limited to stores: they act on stores' guides, offers and
    /// disputes.
    pub fn scopable(self) -> bool {
        matches!(self, Role::GuideApp | Role::Operator | Role::Reviewer)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who a call runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name: the actor recorded on every write.
    pub name: String,
    pub role: Role,
    /// Empty: every store.
    pub stores: Vec<String>,
    /// The service runs without keys (`[auth] mode = "open"`, or loopback without a keys file):
    /// actors come from request fields, as callers name them.
    pub open: bool,
}

/// A call the principal may not make; the message names what was needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl Principal {
    /// The principal of every call when the service runs without keys.
    pub fn open() -> Arc<Self> {
        Arc::new(Self {
            name: "open".into(),
            role: Role::Admin,
            stores: Vec::new(),
            open: true,
        })
    }

    pub fn scoped(&self) -> bool {
        !self.stores.is_empty()
    }

    /// The key may act on `store_id`.
    pub fn check_store(&self, what: &str, store_id: &str) -> Result<(), Denied> {
        if self.stores.is_empty() || self.stores.iter().any(|s| s == store_id) {
            Ok(())
        } else {
            Err(Denied(format!(
                "key {:?} ({}) is limited to stores {}; {what} is in store {}",
                self.name,
                self.role,
                self.stores.join(","),
                short(store_id)
            )))
        }
    }

    /// The key may act on at least one of `stores`.
    pub fn check_any_store<'a>(
        &self,
        what: &str,
        stores: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Denied> {
        if self.stores.is_empty() {
            return Ok(());
        }
        let stores: Vec<&str> = stores.into_iter().collect();
        if stores.iter().any(|s| self.stores.iter().any(|m| m == s)) {
            return Ok(());
        }
        Err(Denied(format!(
            "key {:?} ({}) is limited to stores {}; {what} concerns none of them",
            self.name,
            self.role,
            self.stores.join(",")
        )))
    }

    /// The call needs a key that is not limited to stores.
    pub fn check_unscoped(&self, what: &str) -> Result<(), Denied> {
        if self.stores.is_empty() {
            Ok(())
        } else {
            Err(Denied(format!(
                "{what} needs a key not limited to stores; key {:?} is limited to {}",
                self.name,
                self.stores.join(",")
            )))
        }
    }

    /// The actor a write records: the key's name. A request field that names someone else is
    /// refused; an empty one means the caller. Without keys, the field as given (and checked
    /// by the call like any other field).
    pub fn actor(&self, field: &str, given: &str) -> Result<String, Denied> {
        if self.open {
            return Ok(given.to_string());
        }
        if given.is_empty() || given == self.name {
            Ok(self.name.clone())
        } else {
            Err(Denied(format!(
                "{field}: the actor is the calling key {:?}; leave it empty or give that name, got {}",
                self.name,
                short(given)
            )))
        }
    }
}

/// At most 64 characters of caller input, escaped, for messages (never the whole input).
pub fn short(s: &str) -> String {
    crate::domain::short(s)
}

#[cfg(test)]
mod tests;
