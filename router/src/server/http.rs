//! Plain HTTP beside gRPC: `GET /metrics` (Prometheus text), `GET /healthz` and
//! `GET /openapi.json` (the JSON surface's document).

use crate::catalog::GuideStatus;
use crate::engine::Engine;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

#[derive(Clone)]
struct HttpState {
    engine: Arc<Engine>,
    prometheus: PrometheusHandle,
    storage_down: super::StorageDown,
    replica: Option<super::Replica>,
}

pub fn router(
    engine: Arc<Engine>,
    prometheus: PrometheusHandle,
    storage_down: super::StorageDown,
    replica: super::Replica,
) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .with_state(HttpState {
            engine,
            prometheus,
            storage_down,
            replica: Some(replica),
        })
}

/// `GET /metrics` alone, for `metrics_listen` (no key: put it where only monitoring reaches).
pub fn metrics_only(engine: Arc<Engine>, prometheus: PrometheusHandle) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(HttpState {
            engine,
            prometheus,
            storage_down: Default::default(),
            replica: None,
        })
}

async fn render_metrics(State(s): State<HttpState>) -> impl IntoResponse {
    let snap = s.engine.snapshot();
    let net = &snap.network;
    let day = s.engine.today();
    let offered: u64 = net
        .guides()
        .iter()
        .filter(|g| g.status == GuideStatus::Active)
        .map(|g| u64::from(g.daily_capacity))
        .sum();
    ::metrics::gauge!("leadrouter_capacity_used").set(snap.book.total_used(day) as f64);
    ::metrics::gauge!("leadrouter_capacity_total").set(offered as f64);
    ::metrics::gauge!("leadrouter_network_stores").set(net.stores().len() as f64);
    ::metrics::gauge!("leadrouter_network_guides").set(net.guides().len() as f64);
    // What is in service: the network, the policy and each learned model, as info gauges (1;
    // a version no longer in service drops to 0).
    let mut info: Vec<(&'static str, Vec<(&'static str, String)>)> = vec![(
        "leadrouter_config_info",
        vec![
            ("network_version", net.version().to_string()),
            ("policy", snap.policy.name().to_string()),
            ("policy_version", snap.policy.version().to_string()),
        ],
    )];
    let models = net.learned_models();
    for (kind, version) in [
        (
            "preference",
            models.preference.as_ref().map(|m| m.meta.version.clone()),
        ),
        (
            "propensity",
            models.propensity.as_ref().map(|m| m.meta.version.clone()),
        ),
        (
            "segments",
            models.segments.as_ref().map(|m| m.version.clone()),
        ),
        (
            "skill",
            models.skill.as_ref().map(|m| m.meta.version.clone()),
        ),
        (
            "prices",
            models.prices.as_ref().map(|m| m.meta.version.clone()),
        ),
    ] {
        if let Some(v) = version {
            info.push((
                "leadrouter_model_info",
                vec![("kind", kind.to_string()), ("version", v)],
            ));
        }
    }
    super::metrics::set_info(info);
    // Offers waiting for a guide's answer, over every replica.
    let engine = s.engine.clone();
    match tokio::task::spawn_blocking(move || engine.store().open_offer_count()).await {
        Ok(Ok(n)) => ::metrics::gauge!("leadrouter_offers_open").set(n as f64),
        Ok(Err(e)) => tracing::warn!(error = %e, "open offers for /metrics"),
        Err(e) => tracing::warn!(error = %e, "open offers for /metrics"),
    }
    // Today's load spread, from storage's counts (every replica's routes, not only this one's).
    let engine = s.engine.clone();
    let counts = tokio::task::spawn_blocking(move || engine.store().day_counts(day)).await;
    match counts {
        Ok(Ok(counts)) => {
            let used: std::collections::HashMap<&str, u32> =
                counts.iter().map(|(g, n)| (g.as_str(), *n)).collect();
            let active = net
                .guides()
                .iter()
                .filter(|g| g.status == GuideStatus::Active);
            let (gini, idle) = leadrouter_models::fairness::load_spread(
                active.map(|g| (used.get(&*g.id).copied().unwrap_or(0), g.daily_capacity)),
            );
            let with_capacity = net
                .guides()
                .iter()
                .filter(|g| g.status == GuideStatus::Active && g.daily_capacity > 0)
                .count();
            ::metrics::gauge!("leadrouter_guide_load_gini").set(gini);
            ::metrics::gauge!("leadrouter_guides_idle").set(idle as f64);
            ::metrics::gauge!("leadrouter_guides_active").set(with_capacity as f64);
        }
        // The scrape still answers; the spread keeps its last value and the storage gauges say
        // why.
        Ok(Err(e)) => tracing::warn!(error = %e, "today's counts for the load spread"),
        Err(e) => tracing::warn!(error = %e, "today's counts for the load spread"),
    }
    s.prometheus.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
}

/// `GET /openapi.json`: the JSON surface's OpenAPI 3.1 document, generated from the contract.
async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        leadrouter_proto::OPENAPI_JSON,
    )
}

async fn healthz(State(s): State<HttpState>) -> impl IntoResponse {
    let snap = s.engine.snapshot();
    let damaged = super::status::DAMAGED_READS.load(std::sync::atomic::Ordering::Relaxed);
    let at_start = super::status::DAMAGED_AT_START.load(std::sync::atomic::Ordering::Relaxed);
    let down = s.storage_down.get();
    let status = match (&down, damaged == 0 && at_start == 0) {
        (Some(_), _) => "not_serving",
        (None, true) => "serving",
        (None, false) => "degraded",
    };
    let body = serde_json::json!({
        "status": status,
        "storage": down.as_deref().map_or("ok".to_string(), |why| format!("cannot be read: {why}")),
        "damaged_reads": damaged,
        "damaged_records_at_start": at_start,
        "network_version": snap.network.version(),
        "stores": snap.network.stores().len(),
        "guides": snap.network.guides().len(),
        "policy": snap.policy.name(),
        "business_day": s.engine.today().to_string(),
        "replica": s.replica.as_ref().map(super::Replica::describe),
    });
    (
        if down.is_some() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        },
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}
