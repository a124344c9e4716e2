use super::*;

impl Decisions for SledStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        let key = decision_key(lead_id.as_bytes());
        if let Some(d) = self.pending.lock().get(&key) {
            return Ok(Some(d.clone()));
        }
        match self.routes.get(&key).map_err(backend)? {
            None => Ok(None),
            Some(bytes) => codec::decode_decision(&bytes)
                .map(|d| Some(Arc::new(d)))
                .map_err(|why| StorageError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    why,
                }),
        }
    }

    fn put_decision(
        &self,
        d: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StorageError> {
        self.put(d, guide_count, Vec::new())
    }

    fn replace_decision(
        &self,
        previous: &Decision,
        d: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StorageError> {
        // The previous version's capacity entry stays: day_counts() counts a lead only for the
        // guide and day its decision names now.
        self.put(d, guide_count, offer_key(previous).into_iter().collect())
    }

    fn open_offers(&self) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut out = Vec::new();
        for kv in self.routes.scan_prefix(b"o/") {
            let (k, _) = kv.map_err(backend)?;
            let Some(lead) = k.get(10..) else { continue };
            let Some(d) = self.decision(&String::from_utf8_lossy(lead))? else {
                continue;
            };
            // Trusted only when the decision still holds that open offer.
            if offer_key(&d).as_deref() == Some(&k[..]) {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError> {
        self.flush()?;
        // Every (guide, lead) that took capacity on `day`: from capacity records, and from the
        // per-decision index keys that stores before capacity records wrote.
        let mut claims: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        let prefix = count_prefix(day);
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(backend)?;
            let corrupt = || StorageError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why: "capacity record is truncated".into(),
            };
            let mut rest = &v[..];
            while !rest.is_empty() {
                let (guide, r) = take_id(rest).ok_or_else(corrupt)?;
                let (lead, r) = take_id(r).ok_or_else(corrupt)?;
                claims
                    .entry(lead.to_vec())
                    .or_default()
                    .push(guide.to_vec());
                rest = r;
            }
        }
        let prefix = index_prefix(day);
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(backend)?;
            let (guide, lead) = take_id(&k[prefix.len()..])
                .map(|(g, lead)| (g.to_vec(), lead.to_vec()))
                .ok_or_else(|| StorageError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    why: "index key is truncated".into(),
                })?;
            claims.entry(lead).or_default().push(guide);
        }
        // A lead counts once, for the guide its stored decision names on that day: an entry
        // whose decision was lost in a crash, or that a later version (an offer that moved on)
        // replaced, counts for nothing.
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (lead, guides) in claims {
            let lead = String::from_utf8_lossy(&lead);
            let Some(d) = self.decision(&lead)? else {
                continue;
            };
            if d.day != day {
                continue;
            }
            if let Some(g) = d.guide_id()
                && guides.iter().any(|c| c.as_slice() == g.as_bytes())
            {
                *counts.entry(g.to_string()).or_default() += 1;
            }
        }
        let mut out: Vec<(String, u32)> = counts.into_iter().collect();
        out.sort();
        Ok(out)
    }

    fn decision_count(&self) -> Result<u64, StorageError> {
        self.flush()?;
        Ok(self.routes.scan_prefix(b"d/").count() as u64)
    }

    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StorageError> {
        self.flush()?;
        for kv in self.routes.scan_prefix(b"d/") {
            let (k, v) = kv.map_err(backend)?;
            let d = codec::decode_decision(&v).map_err(|why| StorageError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why,
            })?;
            if !f(Arc::new(d)) {
                break;
            }
        }
        Ok(())
    }
}
