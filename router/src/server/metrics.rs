//! Prometheus metrics. One recorder per process (the `metrics` facade is global); every server in
//! the process renders from it.
//!
//! - `leadrouter_build_info` (gauge 1, label `version`): the build in service.
//! - `leadrouter_config_info` (gauge; `network_version`, `policy`, `policy_version`) and
//!   `leadrouter_model_info` (gauge; `kind`, `version`), set at scrape: 1 for what is in
//!   service, 0 for a version a reload replaced.
//! - `leadrouter_route_duration_seconds` (histogram, label `policy`): time inside route().
//! - `leadrouter_routes_total` (counter; `policy`, `channel`, `outcome` = routed | unrouted |
//!   replayed, `reason` = the unrouted reason or empty).
//! - `leadrouter_experiment_routes_total` (counter; `experiment`, `arm`, `outcome` = routed |
//!   unrouted | replayed): routes whose policy an experiment chose.
//! - `leadrouter_policy_reloads_total` (counter; `result` = ok | failed): `[policy]` and
//!   `[[experiments]]` re-read on SIGHUP.
//! - `leadrouter_route_rejected_total` (counter; `field`, indexes elided): bad requests.
//! - `leadrouter_capacity_used`, `leadrouter_capacity_total` (gauges, set at scrape): today's
//!   used and offered capacity over active guides.
//! - `leadrouter_attribution_duration_seconds` (histogram; `method`, `outcome` = ok | invalid |
//!   conflict | not_found | precondition | store_error): time of each Attribution call, including
//!   the flush that orders and refunds wait for.
//! - `leadrouter_attribution_rejected_total` (counter; `method`, `field`): bad requests.
//! - `leadrouter_store_flush_batch` (histogram): callers served by one disk flush (group commit).
//! - `leadrouter_store_flush_duration_seconds` (histogram): time of one disk flush.
//! - `leadrouter_network_stores`, `leadrouter_network_guides` (gauges, set at scrape).
//! - `leadrouter_offers_open` (gauge, set at scrape from storage, so every replica's offers
//!   count): offers waiting for a guide's answer.
//! - `leadrouter_guide_load_gini`, `leadrouter_guides_idle`, `leadrouter_guides_active` (gauges,
//!   set at scrape from storage's counts for today's business day, so every replica's routes
//!   count): the Gini of active guides' used share of capacity, how many of them have no lead
//!   yet, and how many there are.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const ROUTE_DURATION: &str = "leadrouter_route_duration_seconds";
pub const ROUTES: &str = "leadrouter_routes_total";
pub const REJECTED: &str = "leadrouter_route_rejected_total";
pub const EXPERIMENT_ROUTES: &str = "leadrouter_experiment_routes_total";
pub const ATTRIBUTION_DURATION: &str = "leadrouter_attribution_duration_seconds";
pub const ATTRIBUTION_REJECTED: &str = "leadrouter_attribution_rejected_total";

/// Latency buckets in seconds: 5 µs … 100 ms.
const BUCKETS: [f64; 14] = [
    5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1,
];

/// Attribution latency buckets in seconds: 50 µs … 2 s (orders include a disk flush).
const SLOW_BUCKETS: [f64; 14] = [
    5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 5e-1, 2.0,
];

/// The process's recorder handle, installed on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ROUTE_DURATION.into()), &BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(ATTRIBUTION_DURATION.into()),
                        &SLOW_BUCKETS,
                    )
                })
                .expect("buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); then ours
            // still renders what is recorded through it... which is nothing, so say so.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            register();
            handle
        })
        .clone()
}

/// What the alerting rules (`ops/prometheus/alerts.yml`) read, present from the start: a
/// counter that has never moved is exported as 0 rather than missing (an alert on its increase
/// needs a first sample), and the build in service is named.
fn register() {
    metrics::gauge!("leadrouter_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::counter!("leadrouter_storage_damaged_reads_total").increment(0);
    metrics::counter!("leadrouter_storage_retries_total").increment(0);
    metrics::gauge!(super::watch::STREAMS).increment(0.0);
    for reason in super::gate::REFUSAL_REASONS {
        metrics::counter!(super::gate::REFUSED, "reason" => reason).increment(0);
    }
    for kind in [
        "leadrouter_model_reloads_total",
        "leadrouter_rule_reloads_total",
        "leadrouter_keys_reloads_total",
        "leadrouter_policy_reloads_total",
    ] {
        for result in ["ok", "failed"] {
            metrics::counter!(kind, "result" => result).increment(0);
        }
    }
}

/// An info gauge's name and labels.
pub type Info = (&'static str, Vec<(&'static str, String)>);

/// Sets each info gauge to 1 and every one set before but not now to 0 (a version replaced by a
/// reload), so a query for `== 1` names what is in service.
pub fn set_info(now: Vec<Info>) {
    static LAST: std::sync::Mutex<Vec<Info>> = std::sync::Mutex::new(Vec::new());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let gauge = |(name, labels): &Info| {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        metrics::gauge!(*name, labels)
    };
    for old in last.iter().filter(|i| !now.contains(i)) {
        gauge(old).set(0.0);
    }
    for i in &now {
        gauge(i).set(1.0);
    }
    *last = now;
}

/// `interests[3].weight` → `interests[].weight`, so labels stay few.
pub fn field_label(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut skipping = false;
    for ch in field.chars() {
        match ch {
            '[' => {
                skipping = true;
                out.push('[');
            }
            ']' => {
                skipping = false;
                out.push(']');
            }
            _ if skipping => {}
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_info_gauge_replaced_by_a_reload_drops_to_zero() {
        let h = handle();
        let info = |v: &str| vec![("leadrouter_test_info", vec![("version", v.to_string())])];
        set_info(info("a"));
        set_info(info("b"));
        let text = h.render();
        assert!(
            text.contains("leadrouter_test_info{version=\"a\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("leadrouter_test_info{version=\"b\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn field_labels_drop_indexes() {
        assert_eq!(
            super::field_label("interests[12].weight"),
            "interests[].weight"
        );
        assert_eq!(super::field_label("lead_id"), "lead_id");
    }
}
