//! The keys and values of the sled backend (see [`super::SledStore`] for the layout).

use super::*;

pub(super) fn decision_key(lead_id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + lead_id.len());
    k.extend_from_slice(b"d/");
    k.extend_from_slice(lead_id);
    k
}

pub(super) fn index_prefix(day: Day) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + 48);
    k.extend_from_slice(b"i/");
    k.extend_from_slice(&day.0.to_be_bytes());
    k
}

/// The per-decision index key that stores wrote before capacity records (read, never written).
#[cfg(test)]
pub(super) fn index_key(day: Day, guide_id: &str, lead_id: &str) -> Vec<u8> {
    let mut k = index_prefix(day);
    push_id(&mut k, guide_id);
    k.extend_from_slice(lead_id.as_bytes());
    k
}

/// `c/<day i32 BE>`: where a day's capacity records start.
pub(super) fn count_prefix(day: Day) -> Vec<u8> {
    let mut k = Vec::with_capacity(14);
    k.extend_from_slice(b"c/");
    k.extend_from_slice(&day.0.to_be_bytes());
    k
}

/// Appends `id` with its length byte in front, as every key and record here holds ids. Ids are at
/// most 128 bytes (checked on input), so the length fits a byte.
pub(super) fn push_id(buf: &mut Vec<u8>, id: &str) {
    buf.push(id.len().min(255) as u8);
    buf.extend_from_slice(id.as_bytes());
}

/// One id with its length byte in front (as [`push_id`] wrote it); the rest after it.
pub(super) fn take_id(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    (rest.len() >= usize::from(len)).then(|| rest.split_at(usize::from(len)))
}

/// `o/<expires_at u64 BE><lead_id>` while a decision's offer is open.
pub(super) fn offer_key(d: &Decision) -> Option<Vec<u8>> {
    let o = d.offer.as_ref()?;
    if o.status != crate::domain::offer::OfferStatus::Open {
        return None;
    }
    let mut k = Vec::with_capacity(10 + d.lead.lead_id.len());
    k.extend_from_slice(b"o/");
    k.extend_from_slice(&(o.expires_at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(d.lead.lead_id.as_bytes());
    Some(k)
}

/// `q/<store length u8><store>`: where a store's queue starts.
pub(super) fn queue_prefix(store_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + store_id.len() + 8 + 32);
    k.extend_from_slice(b"q/");
    push_id(&mut k, store_id);
    k
}

/// `q/<store length u8><store><decided_at u64 BE><lead_id>` while a decision waits in a
/// store's queue.
pub(super) fn queue_key(d: &Decision) -> Option<Vec<u8>> {
    let store = crate::storage::desk_of(d).1?;
    let mut k = queue_prefix(store);
    k.extend_from_slice(&(d.decided_at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(d.lead.lead_id.as_bytes());
    Some(k)
}

/// `n/<seq u64 BE>`: an offer notice.
pub(super) fn notice_key(seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(b"n/");
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn member_prefix(member_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + member_id.len() + 8);
    k.push(b'e');
    push_id(&mut k, member_id);
    k
}

pub(super) fn event_key(member_id: &str, seq: u64) -> Vec<u8> {
    let mut k = member_prefix(member_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn trail_key(key: TrailKey<'_>) -> Vec<u8> {
    let (tag, id) = key.tag();
    let mut k = Vec::with_capacity(2 + id.len());
    k.push(b'k');
    k.push(tag);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `b<member length u8><member>`: the member's latest binding event.
pub(super) fn binding_key(member_id: &str) -> Vec<u8> {
    let mut k = member_prefix(member_id);
    k[0] = b'b';
    k
}

/// `g<guide length u8><guide><member>`: the member has been bound to the guide.
pub(super) fn guide_member_key(guide_id: &str, member_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + guide_id.len() + member_id.len());
    k.push(b'g');
    push_id(&mut k, guide_id);
    k.extend_from_slice(member_id.as_bytes());
    k
}

/// `f<order_id length u8><order_id><refund_id>`: one per refund, pointing at its event.
pub(super) fn refund_prefix(order_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + order_id.len() + 16);
    k.push(b'f');
    push_id(&mut k, order_id);
    k
}

/// `t<occurred_at, sign-flipped u64 BE><o|r><id>`: orders and refunds in time order.
pub(super) fn ledger_key(c: &LedgerCursor) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + c.id.len());
    k.push(b't');
    k.extend_from_slice(&((c.occurred_at_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.push(c.tag);
    k.extend_from_slice(c.id.as_bytes());
    k
}

pub(super) fn decode_event(key: &[u8], bytes: &[u8]) -> Result<TrailEvent, StorageError> {
    std::str::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(TrailEvent::from_line)
        .map_err(|why| StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            why,
        })
}

/// `(seq, hash)` of a stored event without decoding it: `seq` ends the key, and `hash` is the
/// last member of the canonical line (`…,"hash":"<64 hex>"}`). `None` when the line does not
/// end that way (then the caller decodes it).
pub(super) fn head_of(key: &[u8], line: &[u8]) -> Option<(u64, String)> {
    let seq = u64::from_be_bytes(key.get(key.len().checked_sub(8)?..)?.try_into().ok()?);
    let tail = line.get(line.len().checked_sub(74)?..)?;
    let hash = tail.strip_prefix(b"\"hash\":\"")?.strip_suffix(b"\"}")?;
    if hash.len() != 64 || !hash.iter().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((seq, String::from_utf8_lossy(hash).into_owned()))
}

/// `K/<key>` in the `meta` tree: the number of the audit entry appended under `key`.
pub(super) fn audit_once_key(key: &str) -> Vec<u8> {
    let mut k = b"K/".to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// What an `audit_once_key` holds: the entry's number and the SHA-256 of its line.
pub(super) fn audit_once_of<'v>(k: &[u8], v: &'v [u8]) -> Result<(u64, &'v [u8]), StorageError> {
    match v.split_first_chunk::<8>() {
        Some((seq, digest)) if digest.len() == 32 => Ok((u64::from_be_bytes(*seq), digest)),
        _ => Err(StorageError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            why: format!(
                "an audit key holds a number and a digest (40 bytes), got {}",
                v.len()
            ),
        }),
    }
}

/// `a<seq u64 BE>` in the `meta` tree: one audit entry.
pub(super) fn audit_key(seq: u64) -> [u8; 9] {
    seq_key(b'a', seq)
}

/// `<tag><seq u64 BE>` in the `meta` tree: `a` audit entries, `D` disputes.
pub(super) fn seq_key(tag: u8, seq: u64) -> [u8; 9] {
    let mut k = [tag; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn audit_seq(key: &[u8]) -> Result<u64, StorageError> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            why: "an audit key is `a` and 8 bytes of seq".into(),
        })
}

pub(super) fn utf8(key: &[u8], value: &[u8]) -> Result<String, StorageError> {
    String::from_utf8(value.to_vec()).map_err(|e| StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        why: e.to_string(),
    })
}
