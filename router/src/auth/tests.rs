use super::*;
use std::time::{Duration, Instant};

const NOW: &str = "2026-12-02T08:00:00Z";

#[test]
fn a_key_is_shown_once_and_stored_only_as_its_hash() {
    let mut file = KeysFile::default();
    let key = file
        .add("app", Role::RouterClient, vec![], NOW.into())
        .unwrap();
    assert!(key.starts_with("lrk_") && key.len() == 4 + 64);
    let text = file.to_toml();
    assert!(!text.contains(&key[4..]), "the key itself is in the file");
    let again = KeysFile::parse(&text).unwrap();
    assert_eq!(again, file);
    let ring = Keyring::from_file(&again);
    let (p, _) = ring.lookup(&key).unwrap();
    assert_eq!(
        (p.name.as_str(), p.role, p.open),
        ("app", Role::RouterClient, false)
    );
    assert!(ring.lookup("lrk_0000").is_none());
    assert!(ring.lookup(&key[..key.len() - 1]).is_none());
    // Two keys made one after the other differ.
    assert_ne!(new_key(), new_key());
}

#[test]
fn revoked_keys_are_refused() {
    let mut file = KeysFile::default();
    let a = file.add("a", Role::Analyst, vec![], NOW.into()).unwrap();
    let b = file.add("b", Role::Analyst, vec![], NOW.into()).unwrap();
    file.revoke("a", NOW.into()).unwrap();
    let ring = Keyring::from_file(&KeysFile::parse(&file.to_toml()).unwrap());
    assert!(ring.lookup(&a).is_none());
    assert!(ring.lookup(&b).is_some());
    assert!(
        file.revoke("a", NOW.into())
            .unwrap_err()
            .to_string()
            .contains("already revoked")
    );
    assert!(
        file.revoke("zz", NOW.into())
            .unwrap_err()
            .to_string()
            .contains("no key is named")
    );
}

#[test]
fn bad_records_name_the_record_and_field_and_change_nothing() {
    let mut file = KeysFile::default();
    file.add("a", Role::Operator, vec!["S00001".into()], NOW.into())
        .unwrap();
    let e = file
        .add("a", Role::Analyst, vec![], NOW.into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("used twice"), "{e}");
    assert_eq!(file.keys.len(), 1);
    let e = file
        .add("b", Role::Analyst, vec!["S1".into()], NOW.into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("stores: only guide_app"), "{e}");
    let e = file
        .add("no spaces", Role::Analyst, vec![], NOW.into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("name: must be letters"), "{e}");
    assert_eq!(file.keys.len(), 1);

    let e =
        KeysFile::parse("[[key]]\nname = \"x\"\nrole = \"god\"\nsha256 = \"00\"\ncreated = \"\"\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("god"), "{e}");
    let text = format!(
        "[[key]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"{}\"\ncreated = \"\"\n",
        "ab".repeat(31)
    );
    let e = KeysFile::parse(&text).unwrap_err().to_string();
    assert!(e.contains("key[0] (\"x\"): sha256"), "{e}");
    // A message never includes a hash.
    let h = "ab".repeat(32);
    let text = format!(
        "[[key]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"{h}\"\ncreated = \"\"\n[[key]]\nname = \"y\"\nrole = \"admin\"\nsha256 = \"{h}\"\ncreated = \"\"\n"
    );
    let e = KeysFile::parse(&text).unwrap_err().to_string();
    assert!(e.contains("listed twice") && !e.contains(&h), "{e}");
}

#[test]
fn roles_and_scopes() {
    let op = Principal {
        name: "s1-ops".into(),
        role: Role::Operator,
        stores: vec!["S00001".into()],
        open: false,
    };
    let route = permission("/leadrouter.v1.LeadRouter/Route").unwrap();
    let e = route.access.allows(&op).unwrap_err().to_string();
    assert!(e.contains("needs role router_client or admin"), "{e}");
    let upsert = permission("/leadrouter.v1.Catalog/UpsertStore").unwrap();
    assert!(upsert.access.allows(&op).is_ok());
    assert!(op.check_store("store S00001", "S00001").is_ok());
    assert!(
        op.check_store("guide G2", "S00002")
            .unwrap_err()
            .to_string()
            .contains("limited to stores S00001")
    );
    assert!(
        op.check_any_store("dispute D1", ["S00009", "S00001"])
            .is_ok()
    );
    assert!(op.check_any_store("dispute D1", ["S00009"]).is_err());
    assert!(op.check_unscoped("ListAudit").is_err());
    let admin = Principal {
        name: "root".into(),
        role: Role::Admin,
        stores: vec![],
        open: false,
    };
    for p in PERMISSIONS {
        assert!(p.access.allows(&admin).is_ok(), "{}", p.path);
    }
    assert!(permission("/leadrouter.v1.LeadRouter/Nope").is_none());
}

#[test]
fn the_actor_is_the_key() {
    let p = Principal {
        name: "rev-7".into(),
        role: Role::Reviewer,
        stores: vec![],
        open: false,
    };
    assert_eq!(p.actor("reviewer_id", "").unwrap(), "rev-7");
    assert_eq!(p.actor("reviewer_id", "rev-7").unwrap(), "rev-7");
    let e = p.actor("reviewer_id", "boss").unwrap_err().to_string();
    assert!(
        e.starts_with("reviewer_id:") && e.contains("\"boss\""),
        "{e}"
    );
    let open = Principal::open();
    assert_eq!(open.actor("reviewer_id", "boss").unwrap(), "boss");
    assert_eq!(open.actor("reviewer_id", "").unwrap(), "");
}

#[test]
fn token_buckets_refill_at_their_rate() {
    let r = RateLimiter::default();
    let t0 = Instant::now();
    for _ in 0..4 {
        r.take("k", 2.0, 4.0, t0).unwrap();
    }
    let wait = r.take("k", 2.0, 4.0, t0).unwrap_err();
    assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
    // Another key has its own bucket.
    r.take("other", 2.0, 4.0, t0).unwrap();
    // Half a second later one token is back, and only one.
    let t1 = t0 + Duration::from_millis(500);
    r.take("k", 2.0, 4.0, t1).unwrap();
    assert!(r.take("k", 2.0, 4.0, t1).is_err());
}
