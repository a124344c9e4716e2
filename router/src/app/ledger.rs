//! `leadrouter ledger`: a settlement statement from a running server (ListLedger, paged): per
//! party, credits, reversals and net over a window, or every line as CSV.

use leadrouter_proto::v1 as pb;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Per party: (credits, reversals, orders credited) in cents.
pub type Totals = BTreeMap<String, (i64, i64, u64)>;

/// Reads every ledger line in `[from_ms, to_ms)` (one party's when given).
pub async fn read(
    url: &str,
    from_ms: i64,
    to_ms: i64,
    party: Option<&str>,
) -> anyhow::Result<Vec<pb::LedgerLine>> {
    let mut client =
        pb::attribution_client::AttributionClient::new(super::client::connect(url).await?);
    let ts = |ms: i64| crate::wire::ms_to_timestamp(ms);
    let mut token = String::new();
    let mut lines = Vec::new();
    loop {
        let page = client
            .list_ledger(pb::ListLedgerRequest {
                from: Some(ts(from_ms)),
                to: Some(ts(to_ms)),
                party: party.unwrap_or_default().to_string(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .map_err(|s| anyhow::anyhow!("ListLedger: {}: {}", s.code(), s.message()))?
            .into_inner();
        lines.extend(page.lines);
        if page.next_page_token.is_empty() {
            return Ok(lines);
        }
        token = page.next_page_token;
    }
}

pub fn totals(lines: &[pb::LedgerLine]) -> Totals {
    let mut t = Totals::new();
    for l in lines {
        let e = t.entry(l.party.clone()).or_default();
        if l.amount_cents >= 0 {
            e.0 += l.amount_cents;
            e.2 += 1;
        } else {
            e.1 += l.amount_cents;
        }
    }
    t
}

fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        cents.unsigned_abs() / 100,
        cents.unsigned_abs() % 100
    )
}

/// An aligned statement: party, entries credited, credits, reversals, net (yuan, exact).
pub fn statement(t: &Totals) -> String {
    let width = t.keys().map(String::len).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$} {:>8} {:>14} {:>14} {:>14}\n",
        "party", "entries", "credit", "reversed", "net"
    );
    let (mut c, mut r) = (0i64, 0i64);
    for (party, (credit, reversed, n)) in t {
        let _ = writeln!(
            out,
            "{party:<width$} {n:>8} {:>14} {:>14} {:>14}",
            yuan(*credit),
            yuan(*reversed),
            yuan(credit + reversed)
        );
        c += credit;
        r += reversed;
    }
    let _ = write!(
        out,
        "{:<width$} {:>8} {:>14} {:>14} {:>14}",
        "total",
        "",
        yuan(c),
        yuan(r),
        yuan(c + r)
    );
    out
}

/// Every line as CSV.
pub fn csv(lines: &[pb::LedgerLine]) -> String {
    let mut out = String::from(
        "occurred_at_ms,member_id,order_id,refund_id,adjustment_id,party,role,amount_cents\n",
    );
    for l in lines {
        let ms = l
            .occurred_at
            .as_ref()
            .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        let _ = writeln!(
            out,
            "{ms},{},{},{},{},{},{},{}",
            l.member_id, l.order_id, l.refund_id, l.adjustment_id, l.party, l.role, l.amount_cents
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(party: &str, cents: i64) -> pb::LedgerLine {
        pb::LedgerLine {
            party: party.into(),
            amount_cents: cents,
            ..Default::default()
        }
    }

    #[test]
    fn totals_and_statement_are_exact() {
        let lines = [
            line("guide:G1", 3000),
            line("store:S1", 6001),
            line("guide:G1", -1),
            line("guide:G1", 5),
        ];
        let t = totals(&lines);
        assert_eq!(t["guide:G1"], (3005, -1, 2));
        let s = statement(&t);
        assert!(s.contains("30.05"), "{s}");
        assert!(s.contains("-0.01"), "{s}");
        assert!(s.lines().last().unwrap().contains("90.05"), "{s}");
        assert_eq!(csv(&lines).lines().count(), 5);
    }
}
