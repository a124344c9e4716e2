//! Reviewers' sessions, kept in the cookie itself so that any replica serves any request: the
//! cookie names the reviewer and when the session ends, signed with HMAC-SHA256 under a secret
//! derived from that reviewer's stored key hash (so revoking the key ends its sessions on every
//! replica at once, and nothing else needs sharing). Every form carries a CSRF token derived
//! from the session the same way. Without keys (loopback), the secret is this process's own.

use crate::auth::{Keyring, Principal, Role};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "lr_review";

/// How long a sign-in lasts.
pub const SESSION_MS: i64 = 8 * 3600 * 1000;

/// A signed-in reviewer.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Arc<Principal>,
    pub csrf: String,
}

/// Where sessions' secrets come from.
pub enum Secrets<'a> {
    /// Keys in service: each reviewer's secret comes from their key.
    Keys(&'a Keyring),
    /// No keys: this process's random secret; every name is a reviewer.
    Open(&'a [u8; 32]),
}

fn mac(secret: &[u8], parts: &[&str]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"\n");
    }
    hex::encode(m.finalize().into_bytes())
}

/// Roles that may review through the pages.
pub fn may_review(p: &Principal) -> bool {
    p.open || matches!(p.role, Role::Reviewer | Role::Admin)
}

impl Secrets<'_> {
    /// The principal named `name` and its session secret, if it may review.
    fn of(&self, name: &str) -> Option<(Arc<Principal>, Vec<u8>)> {
        match self {
            Secrets::Keys(ring) => {
                let (p, hash) = ring.by_name(name)?;
                let secret = Sha256::digest(format!("leadrouter review session v1\n{hash}"));
                may_review(&p).then(|| (p, secret.to_vec()))
            }
            Secrets::Open(secret) => {
                let p = Arc::new(Principal {
                    name: name.to_string(),
                    ..(*Principal::open()).clone()
                });
                Some((p, secret.to_vec()))
            }
        }
    }

    /// A new session for `name` from `now_ms`: the cookie's value.
    pub fn issue(&self, name: &str, now_ms: i64) -> Option<String> {
        let (_, secret) = self.of(name)?;
        let until = (now_ms + SESSION_MS).to_string();
        let who = hex::encode(name);
        let sig = mac(&secret, &["session", &who, &until]);
        Some(format!("{who}.{until}.{sig}"))
    }

    /// The session a cookie value stands for, if it is signed, unexpired and its reviewer
    /// still may review.
    pub fn check(&self, cookie: &str, now_ms: i64) -> Option<Session> {
        let mut it = cookie.split('.');
        let (who, until, sig) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || until.parse::<i64>().ok()? <= now_ms {
            return None;
        }
        let name = String::from_utf8(hex::decode(who).ok()?).ok()?;
        let (principal, secret) = self.of(&name)?;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&secret).ok()?;
        for p in ["session", who, until] {
            m.update(p.as_bytes());
            m.update(b"\n");
        }
        m.verify_slice(&hex::decode(sig).ok()?).ok()?;
        let csrf = mac(&secret, &["csrf", cookie])[..32].to_string();
        Some(Session { principal, csrf })
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a session (`None`: clears it).
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/review; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_MS / 1000
        ),
        None => format!("{COOKIE}=; Path=/review; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeysFile;

    fn ring() -> (Keyring, String, String) {
        let mut f = KeysFile::default();
        let rev = f
            .add("rev", Role::Reviewer, vec![], "2026-12-01T00:00:00Z".into())
            .unwrap();
        let app = f
            .add("app", Role::GuideApp, vec![], "2026-12-01T00:00:00Z".into())
            .unwrap();
        (Keyring::from_file(&f), rev, app)
    }

    #[test]
    fn a_session_is_signed_expires_and_ends_with_its_key() {
        let (ring, _, _) = ring();
        let s = Secrets::Keys(&ring);
        let c = s.issue("rev", 1_000).unwrap();
        let got = s.check(&c, 2_000).unwrap();
        assert_eq!(got.principal.name, "rev");
        assert_eq!(got.csrf.len(), 32);
        // Expired, tampered, or another key's name: refused.
        assert!(s.check(&c, 1_000 + SESSION_MS).is_none());
        let forged = c.replacen(&hex::encode("rev"), &hex::encode("app"), 1);
        assert!(s.check(&forged, 2_000).is_none());
        let longer = c.replacen(&(1_000 + SESSION_MS).to_string(), "99999999999999", 1);
        assert!(s.check(&longer, 2_000).is_none());
        // Not a reviewer's key: no session at all.
        assert!(s.issue("app", 1_000).is_none());
        // The key revoked (gone from the ring): its sessions end.
        let empty = Keyring::default();
        assert!(Secrets::Keys(&empty).check(&c, 2_000).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(
            cookie_value(Some("a=1; lr_review=x.y.z; b=2")),
            Some("x.y.z")
        );
        assert_eq!(cookie_value(Some("a=1")), None);
        assert!(set_cookie(Some("v"), true).contains("HttpOnly; SameSite=Strict"));
    }
}
