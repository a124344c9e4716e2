use super::*;
use crate::storage::codec::tests::sample_decision;
use crate::storage::{Committed, RouteCommit, Take};

/// Stores a new decision, taking its guide's capacity when `takes`.
fn put(s: &SledStore, d: &Arc<Decision>, takes: bool) {
    let c = RouteCommit {
        decision: d,
        replaces: None,
        take: takes.then(|| Take {
            guide_id: d.guide_id().unwrap(),
            day: d.day,
            capacity: u32::MAX,
        }),
        release: None,
        events: &[],
        head: None,
        notices: &[],
    };
    assert!(matches!(
        s.commit_route(&c).unwrap(),
        Committed::Stored { .. }
    ));
}

fn append1(s: &SledStore, e: &TrailEvent, line: &str, key: TrailKey<'_>) {
    let a = crate::storage::Append {
        event: e.clone(),
        line: line.to_string(),
        key: Some(key),
    };
    assert_eq!(s.append_events(&[a]).unwrap(), Appended::Stored);
}

/// Replaces `prev` by `next` (which takes its guide), giving back `prev`'s guide.
fn replace(s: &SledStore, prev: &Decision, mut next: Decision) -> Arc<Decision> {
    next.version = prev.version + 1;
    let next = Arc::new(next);
    let c = RouteCommit {
        decision: &next,
        replaces: Some(prev.version),
        take: next.guide_id().map(|g| Take {
            guide_id: g,
            day: next.day,
            capacity: u32::MAX,
        }),
        release: prev.guide_id().map(|g| (g, prev.day)),
        events: &[],
        head: None,
        notices: &[],
    };
    assert!(matches!(
        s.commit_route(&c).unwrap(),
        Committed::Stored { .. }
    ));
    next
}

#[test]
fn decisions_counts_and_network_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(sample_decision());
    {
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        assert!(s.decision("L1").unwrap().is_none());
        put(&s, &d, true);
        // Visible at once, before the writer has run.
        assert_eq!(s.decision("L1").unwrap().unwrap(), d);
        s.flush().unwrap();
    }
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    assert_eq!(s.decision("L1").unwrap().unwrap(), d);
    assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 1)]);
    assert!(s.day_counts(Day(d.day.0 + 1)).unwrap().is_empty());
    assert_eq!(s.decision_count().unwrap(), 1);
}

#[test]
fn counts_follow_stored_decisions_and_entries_without_one_count_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    let mut d = sample_decision();
    for n in 1..=2500u32 {
        d.lead.lead_id = format!("L{n}");
        put(&s, &Arc::new(d.clone()), true);
    }
    // Unrouted decisions take nothing.
    let mut u = sample_decision();
    u.lead.lead_id = "U1".into();
    u.assigned = None;
    put(&s, &Arc::new(u), false);
    assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 2500)]);
    assert_eq!(s.decision_count().unwrap(), 2501);
    // What follows is what a restart reads from disk.
    s.flush().unwrap();
    assert_eq!(
        s.counts_on_disk(d.day).unwrap(),
        vec![("G1".to_string(), 2500)]
    );
    // 2500 decisions took capacity in a capacity record per writer chunk, not an index key
    // each (the writer wakes at least every 50 ms, so a slow machine makes more chunks).
    let records = s.routes.scan_prefix(count_prefix(d.day)).count();
    assert!((1..=250).contains(&records), "{records} capacity records");
    assert_eq!(s.routes.scan_prefix(index_prefix(d.day)).count(), 0);
    // A crash between a capacity record and its decisions leaves entries whose decision is
    // missing; legacy index keys likewise. Neither is counted; a legacy key whose decision
    // is there is.
    let mut record = Vec::new();
    for id in ["G1", "lost", "G2", "lost-too"] {
        record.push(id.len() as u8);
        record.extend_from_slice(id.as_bytes());
    }
    let mut k = count_prefix(d.day);
    k.extend_from_slice(&u64::MAX.to_be_bytes());
    s.routes.insert(k, record).unwrap();
    s.routes
        .insert(index_key(d.day, "G1", "lost-three"), &[])
        .unwrap();
    d.lead.lead_id = "legacy".into();
    d.assigned = Some(("S3".into(), "G3".into()));
    s.routes
        .insert(decision_key(b"legacy"), codec::encode_decision(&d))
        .unwrap();
    s.routes
        .insert(index_key(d.day, "G3", "legacy"), &[])
        .unwrap();
    assert_eq!(
        s.counts_on_disk(d.day).unwrap(),
        vec![("G1".to_string(), 2500), ("G3".to_string(), 1)]
    );
    // A truncated record is reported, naming its key.
    let mut k = count_prefix(d.day);
    k.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
    s.routes.insert(k, vec![9, b'G']).unwrap();
    let e = s.counts_on_disk(d.day).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn a_replaced_decision_counts_once_for_the_guide_and_day_it_names_now() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(sample_decision());
    let day = first.day;
    {
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        put(&s, &first, true);
        s.flush().unwrap();
        // The offer moves on to G2, then back to G1, then to G2 on the next day.
        let mut to_g2 = Decision::clone(&first);
        to_g2.assigned = Some(("S2".into(), "G2".into()));
        let to_g2 = replace(&s, &first, to_g2);
        assert_eq!(s.day_counts(day).unwrap(), vec![("G2".to_string(), 1)]);
        let back = replace(&s, &to_g2, Decision::clone(&first));
        assert_eq!(s.day_counts(day).unwrap(), vec![("G1".to_string(), 1)]);
        let mut next_day = Decision::clone(&to_g2);
        next_day.day = Day(day.0 + 1);
        replace(&s, &back, next_day);
        assert!(s.day_counts(day).unwrap().is_empty());
        // A replacement at a version that moved on is refused and writes nothing.
        let stale = RouteCommit {
            decision: &first,
            replaces: Some(first.version),
            take: None,
            release: None,
            events: &[],
            head: None,
            notices: &[],
        };
        assert!(matches!(
            s.commit_route(&stale).unwrap(),
            Committed::Moved(Some(_))
        ));
    }
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    assert!(s.day_counts(day).unwrap().is_empty());
    assert_eq!(
        s.day_counts(Day(day.0 + 1)).unwrap(),
        vec![("G2".to_string(), 1)]
    );
}

#[test]
fn dropping_the_store_makes_queued_writes_durable() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(sample_decision());
    {
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        put(&s, &d, true);
    }
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    assert!(s.decision("L1").unwrap().is_some());
}

#[test]
fn the_head_is_read_from_the_key_and_the_line_tail() {
    use crate::domain::Channel;
    use crate::domain::trail::{EventBody, Touch, TouchKind};
    let (e, line) = TrailEvent::next_with_line(
        "M1",
        Some((41, crate::domain::trail::GENESIS)),
        1,
        2,
        EventBody::Touch(Touch {
            touch_id: "T".into(),
            kind: TouchKind::EcommerceVisit,
            channel: Channel::Ecommerce,
            guide_id: None,
            store_id: None,
            lead_id: None,
            recorded_by: None,
        }),
    );
    let k = event_key("M1", e.seq);
    assert_eq!(head_of(&k, line.as_bytes()), Some((42, e.hash.clone())));
    // Anything else falls back to decoding.
    assert_eq!(head_of(&k, b"{}"), None);
    assert_eq!(head_of(&k, &line.as_bytes()[..line.len() - 1]), None);
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    // Seq 42 onto an empty trail is refused as a moved head; written as it is, it is read back.
    let one = |key| {
        vec![crate::storage::Append {
            event: e.clone(),
            line: line.clone(),
            key,
        }]
    };
    assert_eq!(
        s.append_events(&one(Some(TrailKey::Touch("T")))).unwrap(),
        Appended::HeadMoved
    );
    assert_eq!(s.trail_head("M1").unwrap(), None);
    s.write_event(&e, &line, Some(TrailKey::Touch("T")))
        .unwrap();
    assert_eq!(s.trail_head("M1").unwrap(), Some((42, e.hash.clone())));
    assert_eq!(s.trail_event(TrailKey::Touch("T")).unwrap(), Some(e));
    assert_eq!(s.trail_event(TrailKey::Order("T")).unwrap(), None);
}

#[test]
fn concurrent_flushes_share_disk_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    let before = s.flushes();
    std::thread::scope(|scope| {
        for t in 0..16 {
            let s = &s;
            scope.spawn(move || {
                let mut d = sample_decision();
                for i in 0..20 {
                    d.lead.lead_id = format!("L{t}-{i}");
                    put(s, &Arc::new(d.clone()), false);
                    s.flush().unwrap();
                }
            });
        }
    });
    let flushes = s.flushes() - before;
    // 320 flush calls; each returned only after a disk flush covering its decision.
    assert!(flushes < 320, "{flushes} flushes for 320 calls");
    assert_eq!(s.decision_count().unwrap(), 320);

    // Without group commit every call has its own flush.
    let dir = tempfile::tempdir().unwrap();
    let config = SledConfig {
        group_commit: false,
        ..SledConfig::default()
    };
    let s = SledStore::open(dir.path(), &config).unwrap();
    let before = s.flushes();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for _ in 0..10 {
                    s.flush().unwrap();
                }
            });
        }
    });
    assert!(s.flushes() - before >= 40);
}

#[test]
fn refund_keys_are_trusted_only_when_their_event_is_there() {
    use crate::domain::trail::{EventBody, RefundRecord};
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    let refund = |id: &str| {
        EventBody::Refund(RefundRecord {
            refund_id: id.into(),
            order_id: "O1".into(),
            amount_cents: 5,
            order_seq: 1,
            entries: vec![],
            recorded_by: None,
        })
    };
    let (e, line) = TrailEvent::next_with_line("M1", None, 1, 1, refund("R1"));
    append1(&s, &e, &line, TrailKey::Refund("R1"));
    // A crash after a refund's keys but before its event: keys naming seq 2, no event.
    let mut fk = refund_prefix("O1");
    fk.extend_from_slice(b"R2");
    let at = &event_key("M1", 2)[1..];
    s.trails.insert(fk, at).unwrap();
    s.trails
        .insert(trail_key(TrailKey::Refund("R2")), at)
        .unwrap();
    let got = s.follow_ups_of("O1").unwrap();
    assert_eq!(got, vec![e.clone()]);
    assert_eq!(s.trail_event(TrailKey::Refund("R2")).unwrap(), None);
    // The next append at seq 2 is another refund: R2's keys still do not match it.
    let (e3, line3) = TrailEvent::next_with_line("M1", Some((1, &e.hash)), 2, 2, refund("R3"));
    append1(&s, &e3, &line3, TrailKey::Refund("R3"));
    assert_eq!(s.follow_ups_of("O1").unwrap(), vec![e, e3]);
    assert_eq!(s.trail_event(TrailKey::Refund("R2")).unwrap(), None);
    assert!(s.follow_ups_of("O2").unwrap().is_empty());
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    let e = SledStore::open(dir.path(), &SledConfig::default()).unwrap_err();
    assert!(matches!(e, StorageError::Locked { .. }), "{e}");
}

/// A key whose entry was lost in a crash (the key reached the disk, the entry did not), its
/// number since taken by another entry, does not count: the keyed entry is written again.
#[test]
fn an_audit_key_whose_entry_was_lost_is_written_again() {
    use crate::storage::Logs;
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
    let first = s
        .append_audit_once("resolve:D1", &|seq| format!("{{\"seq\":{seq},\"d\":1}}"))
        .unwrap();
    assert_eq!(
        s.append_audit_once("resolve:D1", &|seq| format!("{{\"seq\":{seq},\"d\":1}}"))
            .unwrap(),
        first
    );
    // The crash: the entry is gone, and another entry takes its number.
    s.meta.remove(audit_key(first)).unwrap();
    let other = s
        .append_audit(&|seq| format!("{{\"seq\":{seq},\"other\":true}}"))
        .unwrap();
    assert_eq!(other, first);
    let again = s
        .append_audit_once("resolve:D1", &|seq| format!("{{\"seq\":{seq},\"d\":1}}"))
        .unwrap();
    assert_eq!(again, first + 1);
    let entries = s.audit_from(1, 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[1].1.contains("\"d\":1"), "{entries:?}");
}
