use super::*;

impl Trails for SledStore {
    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StorageError> {
        match self
            .trails
            .scan_prefix(member_prefix(member_id))
            .next_back()
        {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(backend)?;
                if let Some(head) = head_of(&k, &v) {
                    return Ok(Some(head));
                }
                let e = decode_event(&k, &v)?;
                Ok(Some((e.seq, e.hash)))
            }
        }
    }

    fn trail_from(
        &self,
        member_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let start = event_key(member_id, from_seq);
        let end = event_key(member_id, u64::MAX);
        self.trails
            .range(start..=end)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                decode_event(&k, &v)
            })
            .collect()
    }

    fn trail_before(
        &self,
        member_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let start = event_key(member_id, 0);
        let end = event_key(member_id, before_seq);
        self.trails
            .range(start..end)
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                decode_event(&k, &v)
            })
            .collect()
    }

    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StorageError> {
        let Some(at) = self.trails.get(trail_key(key)).map_err(backend)? else {
            return Ok(None);
        };
        Ok(self.event_at(&at)?.filter(|e| key.matches(e)))
    }

    fn append_events(&self, events: &[Append<'_>]) -> Result<Appended, StorageError> {
        self.check_failed()?;
        let Some(first) = events.first() else {
            return Ok(Appended::Stored);
        };
        check_chain(events)?;
        // The member's lock makes check-then-write one step: sled is opened by one process.
        let _member = self.members.lock(&first.event.member_id);
        if let Some(refused) = self.refuse_append(events)? {
            return Ok(refused);
        }
        for Append { event, line, key } in events {
            self.write_event(event, line, *key)?;
        }
        self.mark_dirty();
        Ok(Appended::Stored)
    }

    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let start = ledger_key(&LedgerCursor::first_at(from_ms));
        let end = ledger_key(&LedgerCursor::first_at(to_ms));
        let start = match after {
            Some(a) => {
                let mut k = ledger_key(a);
                // Strictly after the cursor's own key.
                k.push(0);
                k.max(start)
            }
            None => start,
        };
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        for kv in self.trails.range(start..end) {
            if out.len() >= limit {
                break;
            }
            let (k, at) = kv.map_err(backend)?;
            // Trusted only when the event is the one the key names (a crash may have lost it).
            if let Some(e) = self.event_at(&at)?
                && LedgerCursor::of(&e).is_some_and(|c| ledger_key(&c) == k.as_ref())
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StorageError> {
        let prefix = refund_prefix(order_id);
        let mut out = Vec::new();
        for kv in self.trails.scan_prefix(&prefix) {
            let (k, at) = kv.map_err(backend)?;
            let id = &k[prefix.len()..];
            // Trusted only when the event is there and is this refund or adjustment of this
            // order.
            let Some(e) = self.event_at(&at)? else {
                continue;
            };
            let ours = match (&e.body, id.split_first()) {
                (EventBody::Refund(r), _) => r.order_id == order_id && r.refund_id.as_bytes() == id,
                (EventBody::Adjustment(a), Some((1, rest))) => {
                    a.order_id == order_id && a.adjustment_id.as_bytes() == rest
                }
                _ => false,
            };
            if ours {
                out.push(e);
            }
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StorageError> {
        for kv in self.trails.scan_prefix(b"e") {
            let (k, v) = kv.map_err(backend)?;
            if !f(decode_event(&k, &v)?) {
                break;
            }
        }
        Ok(())
    }

    fn scan_trails_lossy(
        &self,
        f: &mut dyn FnMut(TrailEvent) -> bool,
        damaged: &mut dyn FnMut(StorageError),
    ) -> Result<(), StorageError> {
        for kv in self.trails.scan_prefix(b"e") {
            let (k, v) = kv.map_err(backend)?;
            match decode_event(&k, &v) {
                Ok(e) => {
                    if !f(e) {
                        break;
                    }
                }
                Err(e) => damaged(e),
            }
        }
        Ok(())
    }

    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StorageError> {
        let miss = match self.bindings.get(member_id) {
            Ok(e) => return Ok(Some(TrailEvent::clone(&e))),
            Err(miss) => miss,
        };
        let found = self.latest_binding_on_disk(member_id)?;
        if let Some(e) = &found {
            self.bindings.fill(miss, e);
        }
        Ok(found)
    }

    fn members_of(
        &self,
        guide_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let prefix = guide_member_key(guide_id, "");
        let start = match after {
            Some(a) => {
                let mut k = guide_member_key(guide_id, a);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for kv in self.trails.range(start..) {
            let (k, _) = kv.map_err(backend)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }
}

impl SledStore {
    /// Why `events` cannot be appended as they are, if they cannot (under the member's lock).
    pub(super) fn refuse_append(
        &self,
        events: &[Append<'_>],
    ) -> Result<Option<Appended>, StorageError> {
        let Some(first) = events.first() else {
            return Ok(None);
        };
        let head = self
            .trail_head(&first.event.member_id)?
            .map_or(0, |(s, _)| s);
        crate::storage::refusal(events, head, |key| self.trail_event(key))
    }

    /// Writes one checked event and its keys (keys first: see the type's docs).
    pub(super) fn write_event(
        &self,
        event: &TrailEvent,
        line: &str,
        key: Option<TrailKey<'_>>,
    ) -> Result<(), StorageError> {
        let ek = event_key(&event.member_id, event.seq);
        // The keys first: see the type's docs.
        if let Some(key) = key {
            self.trails
                .insert(trail_key(key), &ek[1..])
                .map_err(backend)?;
        }
        if let Some(c) = LedgerCursor::of(event) {
            self.trails
                .insert(ledger_key(&c), &ek[1..])
                .map_err(backend)?;
        }
        if let Some(b) = event.binding() {
            self.trails
                .insert(binding_key(&event.member_id), &ek[1..])
                .map_err(backend)?;
            self.trails
                .insert(guide_member_key(&b.state.guide_id, &event.member_id), &[])
                .map_err(backend)?;
        }
        if let Some(r) = event.refund() {
            let mut fk = refund_prefix(&r.order_id);
            fk.extend_from_slice(r.refund_id.as_bytes());
            self.trails.insert(fk, &ek[1..]).map_err(backend)?;
        }
        if let Some(a) = event.adjustment() {
            // 0x01 keeps adjustment ids apart from refund ids (ids are printable ASCII).
            let mut fk = refund_prefix(&a.order_id);
            fk.push(1);
            fk.extend_from_slice(a.adjustment_id.as_bytes());
            self.trails.insert(fk, &ek[1..]).map_err(backend)?;
        }
        self.trails.insert(ek, line.as_bytes()).map_err(backend)?;
        if event.binding().is_some() {
            self.bindings.appended(event);
        }
        Ok(())
    }
}
