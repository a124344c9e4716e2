//! `leadrouter disputes list | show ID | resolve ID …`: the reviewers' commands against a running
//! server. Readable tables by default, `--json` for scripts.

use leadrouter_proto::v1 as pb;
use pb::resolve_dispute_request::Outcome;
use serde_json::{Value, json};
use std::fmt::Write as _;
type Client = pb::disputes_client::DisputesClient<super::client::Authed>;

async fn connect(url: &str) -> anyhow::Result<Client> {
    Ok(Client::new(super::client::connect(url).await?))
}

fn call_error(rpc: &str, s: tonic::Status) -> anyhow::Error {
    match s.code() {
        tonic::Code::NotFound => anyhow::anyhow!("{}", s.message()),
        tonic::Code::Unavailable => {
            anyhow::anyhow!("{rpc}: the server is unavailable: {}", s.message())
        }
        code => anyhow::anyhow!("{rpc}: {code}: {}", s.message()),
    }
}

fn ms(t: &Option<leadrouter_proto::Timestamp>) -> Option<i64> {
    t.as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn time(t: &Option<leadrouter_proto::Timestamp>) -> String {
    ms(t)
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn status(v: i32) -> &'static str {
    match pb::DisputeStatus::try_from(v) {
        Ok(pb::DisputeStatus::DisputeOpen) => "open",
        Ok(pb::DisputeStatus::DisputeUpheld) => "upheld",
        Ok(pb::DisputeStatus::DisputeReassigned) => "reassigned",
        _ => "?",
    }
}

/// `--status` of `list`: open, upheld or reassigned.
pub fn status_filter(s: Option<&str>) -> anyhow::Result<i32> {
    Ok(match s {
        None => pb::DisputeStatus::Unspecified,
        Some("open") => pb::DisputeStatus::DisputeOpen,
        Some("upheld") => pb::DisputeStatus::DisputeUpheld,
        Some("reassigned") => pb::DisputeStatus::DisputeReassigned,
        Some(other) => anyhow::bail!("--status: must be open, upheld or reassigned, got {other:?}"),
    } as i32)
}

/// A dispute as JSON (the contract's field names).
pub fn dispute_json(d: &pb::Dispute) -> Value {
    json!({
        "dispute_id": d.dispute_id,
        "order_id": d.order_id,
        "member_id": d.member_id,
        "claimant": d.claimant,
        "claimed_owner": d.claimed_owner,
        "reason": d.reason,
        "opened_by": d.opened_by,
        "opened_at_ms": ms(&d.opened_at),
        "owner_at_open": d.owner_at_open,
        "reopens": d.reopens,
        "status": status(d.status),
        "reviewer_id": d.reviewer_id,
        "resolution_reason": d.resolution_reason,
        "resolved_at_ms": ms(&d.resolved_at),
        "new_owner": d.new_owner,
        "adjustment_seq": d.adjustment_seq,
        "binding_seq": d.binding_seq,
    })
}

/// `list`: every dispute matching the filter (all pages).
pub async fn list(
    url: &str,
    request: pb::ListDisputesRequest,
    as_json: bool,
) -> anyhow::Result<String> {
    let mut client = connect(url).await?;
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_disputes(pb::ListDisputesRequest {
                page_size: 500,
                page_token: token,
                ..request.clone()
            })
            .await
            .map_err(|s| call_error("ListDisputes", s))?
            .into_inner();
        all.extend(page.disputes);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    if as_json {
        return Ok(Value::Array(all.iter().map(dispute_json).collect()).to_string());
    }
    let mut out = format!(
        "{:<8} {:<11} {:<14} {:<18} {:<18} {:<18} {}\n",
        "id", "status", "order", "claimant", "owner at open", "claimed owner", "opened"
    );
    for d in &all {
        let _ = writeln!(
            out,
            "{:<8} {:<11} {:<14} {:<18} {:<18} {:<18} {}",
            d.dispute_id,
            status(d.status),
            d.order_id,
            d.claimant,
            d.owner_at_open,
            d.claimed_owner,
            time(&d.opened_at)
        );
    }
    let _ = write!(out, "{} dispute(s)", all.len());
    Ok(out)
}

fn ownership_line(o: &Option<pb::Ownership>) -> String {
    match o {
        None => "?".into(),
        Some(o) => format!(
            "{} by {} ({}), events {:?}: {}",
            [
                o.guide_id.as_str(),
                o.store_id.as_str(),
                o.channel_party().as_str()
            ]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("?"),
            o.rule,
            o.rule_version,
            o.deciding_events,
            o.explanation
        ),
    }
}

trait ChannelParty {
    fn channel_party(&self) -> String;
}

impl ChannelParty for pb::Ownership {
    fn channel_party(&self) -> String {
        pb::Channel::try_from(self.channel)
            .ok()
            .filter(|c| *c != pb::Channel::Unspecified)
            .map(|c| format!("channel:{}", c.as_str_name()))
            .unwrap_or_default()
    }
}

/// `show ID`: the dispute and its evidence.
pub async fn show(url: &str, id: &str, as_json: bool) -> anyhow::Result<String> {
    let mut client = connect(url).await?;
    let r = client
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: id.to_string(),
        })
        .await
        .map_err(|s| call_error("GetDispute", s))?
        .into_inner();
    let d = r.dispute.clone().unwrap_or_default();
    let order = r.order.clone().unwrap_or_default();
    let entries = |v: &[pb::LedgerEntry]| -> Value {
        v.iter()
            .map(|e| json!({"party": e.party, "role": e.role, "amount_cents": e.amount_cents}))
            .collect()
    };
    if as_json {
        return Ok(json!({
            "dispute": dispute_json(&d),
            "chain_ok": r.chain_ok,
            "chain_error": r.chain_error,
            "mismatches": r.mismatches,
            "trail": r.trail.iter().map(|e| e.canonical_json.clone()).collect::<Vec<_>>(),
            "owner_party": order.owner_party,
            "amount_cents": order.amount_cents,
            "refunded_cents": order.refunded_cents,
            "entries": entries(&order.entries),
            "net": entries(&order.net),
            "stored_ownership": ownership_line(&order.ownership),
            "recomputed_ownership": ownership_line(&r.recomputed),
            "rule_sets": r.rule_sets.iter().map(|s| json!({
                "rule_version": s.rule_version,
                "owner": ownership_line(&s.ownership),
            })).collect::<Vec<_>>(),
            "decisions": r.decisions.iter().map(|x| json!({
                "lead_id": x.lead_id,
                "guide_id": x.guide_id,
                "store_id": x.store_id,
                "score": x.score,
                "reasons": x.reasons,
                "alternatives": x.alternatives.iter().map(|a| json!({
                    "guide_id": a.guide_id, "store_id": a.store_id, "score": a.score,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
        .to_string());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dispute {} ({}) about order {} of member {}",
        d.dispute_id,
        status(d.status),
        d.order_id,
        d.member_id
    );
    let _ = writeln!(
        out,
        "  {} claims it for {}: {} (opened by {} at {})",
        d.claimant,
        d.claimed_owner,
        d.reason,
        d.opened_by,
        time(&d.opened_at)
    );
    if !d.reopens.is_empty() {
        let _ = writeln!(out, "  reopens {}", d.reopens);
    }
    if d.status != pb::DisputeStatus::DisputeOpen as i32 {
        let _ = writeln!(
            out,
            "  resolved by {} at {}: {}{}",
            d.reviewer_id,
            time(&d.resolved_at),
            d.resolution_reason,
            if d.new_owner.is_empty() {
                String::new()
            } else {
                format!(" (now owned by {})", d.new_owner)
            }
        );
    }
    let _ = writeln!(
        out,
        "\nchain: {}",
        if r.chain_ok {
            "intact".to_string()
        } else {
            format!("BROKEN: {}", r.chain_error)
        }
    );
    for m in &r.mismatches {
        let _ = writeln!(out, "  mismatch: {m}");
    }
    let _ = writeln!(
        out,
        "\nownership as stored:     {}",
        ownership_line(&order.ownership)
    );
    let _ = writeln!(
        out,
        "ownership recomputed:    {}",
        ownership_line(&r.recomputed)
    );
    for s in &r.rule_sets {
        let _ = writeln!(
            out,
            "under rule set {:<9} {}",
            s.rule_version,
            ownership_line(&s.ownership)
        );
    }
    let _ = writeln!(
        out,
        "\norder {} cents, refunded {}, owner credit now with {}",
        order.amount_cents, order.refunded_cents, order.owner_party
    );
    let _ = writeln!(out, "{:<22} {:<18} {:>12}", "party", "role", "net cents");
    for e in &order.net {
        let _ = writeln!(out, "{:<22} {:<18} {:>12}", e.party, e.role, e.amount_cents);
    }
    let _ = writeln!(out, "\ntrail around the order:");
    for e in &r.trail {
        let _ = writeln!(
            out,
            "  #{:<4} {:<10} {}",
            e.seq,
            e.r#type,
            time(&e.occurred_at)
        );
    }
    if !r.decisions.is_empty() {
        let _ = writeln!(out, "\nrouting decisions:");
        for x in &r.decisions {
            let _ = writeln!(
                out,
                "  lead {} -> {} / {} (score {:.3}; {}); alternatives: {}",
                x.lead_id,
                x.store_id,
                x.guide_id,
                x.score,
                x.reasons.join(","),
                x.alternatives
                    .iter()
                    .map(|a| format!("{} {:.3}", a.guide_id, a.score))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(out.trim_end().to_string())
}

/// `resolve ID`: uphold, or reassign to `new_owner`.
pub async fn resolve(
    url: &str,
    id: &str,
    new_owner: Option<&str>,
    correct_binding: bool,
    reviewer: &str,
    reason: &str,
    as_json: bool,
) -> anyhow::Result<String> {
    let mut client = connect(url).await?;
    let d = client
        .resolve_dispute(pb::ResolveDisputeRequest {
            dispute_id: id.to_string(),
            outcome: if new_owner.is_some() {
                Outcome::Reassign
            } else {
                Outcome::Uphold
            } as i32,
            new_owner: new_owner.unwrap_or_default().to_string(),
            reviewer_id: reviewer.to_string(),
            reason: reason.to_string(),
            correct_binding,
        })
        .await
        .map_err(|s| call_error("ResolveDispute", s))?
        .into_inner();
    if as_json {
        return Ok(dispute_json(&d).to_string());
    }
    Ok(match d.new_owner.as_str() {
        "" => format!("dispute {}: upheld by {}", d.dispute_id, d.reviewer_id),
        owner => format!(
            "dispute {}: reassigned to {} by {} (compensating entries in trail event {})",
            d.dispute_id, owner, d.reviewer_id, d.adjustment_seq
        ),
    })
}
