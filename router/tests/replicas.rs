//! Three `leadrouter` processes on one PostgreSQL database (a throwaway cluster each test starts
//! itself), with 256 concurrent clients spread over them: a small-capacity store is never over
//! capacity, one lead sent to all three gets one decision, one order sent to all three one
//! ledger entry set; a replica SIGKILLed mid-burst loses no acknowledged order; the database
//! stopped (`pg_ctl stop -m immediate`) and started again mid-burst loses no acknowledged order,
//! and the replicas say NOT_SERVING meanwhile and recover by themselves.

mod common;

use common::*;
use leadrouter::catalog::NetworkFiles;
use leadrouter_pgtest::PgCluster;
use leadrouter_proto::v1 as pb;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const CLIENTS: usize = 256;
/// Small capacities: 17 leads in all over six guides of three stores.
const CAPS: [u32; 6] = [4, 3, 2, 1, 5, 2];

struct Cluster {
    pg: PgCluster,
    url: String,
    replicas: Vec<Binary>,
    _network: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// `n` replicas serving with `extra` arguments.
    fn start_with(n: usize, extra: &[&str]) -> Self {
        let pg = PgCluster::start();
        let url = pg.database();
        let network = tempfile::tempdir().unwrap();
        NetworkFiles::from_spec(&tiny_spec(&CAPS))
            .write_dir(network.path())
            .unwrap();
        let net = network.path().to_str().unwrap().to_string();
        let mut args = vec!["--database-url", &url, "--network", &net];
        args.extend_from_slice(extra);
        let replicas = (0..n).map(|_| Binary::serve(&args)).collect();
        Self {
            pg,
            url,
            replicas,
            _network: network,
        }
    }

    async fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        for r in &self.replicas {
            out.push(
                Channel::from_shared(r.url())
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        out
    }
}

fn order(c: usize, i: usize, at: leadrouter_proto::Timestamp) -> pb::RecordOrderRequest {
    pb::RecordOrderRequest {
        order_id: format!("c{c}-{i}"),
        member_id: format!("m{}", c % 32),
        amount_cents: 100 + (c * 1000 + i) as i64,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S0".into()),
        sharing_guide_id: i.is_multiple_of(3).then(|| "G1".to_string()),
        referrer_guide_ids: vec![],
        occurred_at: Some(at),
    }
}

/// Every acknowledged order is there exactly once with its entries, and every member's trail
/// chains, read through `channel`.
async fn check_orders(channel: Channel, acked: &[pb::RecordOrderResponse]) {
    let mut client = pb::attribution_client::AttributionClient::new(channel);
    orders_exactly_once(&mut client, acked, 32).await;
}

/// `CLIENTS` clients send orders round-robin over `channels` until `stop` says so, each
/// resending an unacknowledged order to the next replica (at most `deadline` in all): what a
/// client behind a load balancer does. Returns the acknowledged orders.
async fn order_burst(
    channels: Vec<Channel>,
    stop: tokio::sync::watch::Receiver<bool>,
    deadline: Duration,
) -> Vec<pb::RecordOrderResponse> {
    let at = now_ts();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let channels = channels.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut replica = c % channels.len();
            for i in 0..10_000 {
                if *stop.borrow() || started.elapsed() > deadline {
                    break;
                }
                loop {
                    let mut client =
                        pb::attribution_client::AttributionClient::new(channels[replica].clone());
                    match client.record_order(order(c, i, at)).await {
                        Ok(r) => {
                            acked.push(r.into_inner());
                            break;
                        }
                        Err(_) if started.elapsed() < deadline => {
                            replica = (replica + 1) % channels.len();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        // Never acknowledged: nothing to check.
                        Err(_) => break,
                    }
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_keep_capacity_and_one_decision_and_one_ledger() {
    let cluster = Cluster::start(3);
    let channels = cluster.channels().await;
    // 256 clients, four new leads each, spread over the replicas: far more leads than
    // capacity.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let channel = channels[c % 3].clone();
        tasks.push(tokio::spawn(async move {
            let mut client = pb::lead_router_client::LeadRouterClient::new(channel);
            let mut got = Vec::new();
            for i in 0..4 {
                let r = client
                    .route(request(&format!("L{c}-{i}"), "440106"))
                    .await
                    .unwrap()
                    .into_inner();
                got.push(r.guide_id);
            }
            got
        }));
    }
    let mut routed: HashMap<String, u32> = HashMap::new();
    for t in tasks {
        for g in t.await.unwrap() {
            if !g.is_empty() {
                *routed.entry(g).or_default() += 1;
            }
        }
    }
    for (i, cap) in CAPS.iter().enumerate() {
        assert_eq!(
            routed.get(&format!("G{i}")).copied().unwrap_or(0),
            *cap,
            "guide G{i} (capacity {cap}): {routed:?}"
        );
    }
    // The database agrees.
    let db = cluster.url.rsplit('/').next().unwrap().to_string();
    let counts = cluster.pg.psql_on(
        &db,
        "SELECT string_agg(guide_id || '=' || used || '/' || capacity, ',' ORDER BY guide_id) \
         FROM guide_counts",
    );
    assert_eq!(counts, "G0=4/4,G1=3/3,G2=2/2,G3=1/1,G4=5/5,G5=2/2");
    assert_eq!(
        cluster.pg.psql_on(&db, "SELECT count(*) FROM decisions"),
        (CLIENTS * 4).to_string()
    );

    // The same lead to all three at once, 40 times: one decision each.
    let mut tasks = Vec::new();
    for l in 0..40 {
        for channel in channels.iter().cycle().take(6) {
            let channel = channel.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = pb::lead_router_client::LeadRouterClient::new(channel);
                let r = client
                    .route(request(&format!("same-{l}"), "440106"))
                    .await
                    .unwrap()
                    .into_inner();
                (l, r.decision_id, r.replayed)
            }));
        }
    }
    let mut decisions: HashMap<usize, Vec<(String, bool)>> = HashMap::new();
    for t in tasks {
        let (l, id, replayed) = t.await.unwrap();
        decisions.entry(l).or_default().push((id, replayed));
    }
    for (l, ds) in &decisions {
        assert!(ds.iter().all(|d| d.0 == ds[0].0), "lead same-{l}: {ds:?}");
        assert_eq!(
            ds.iter().filter(|d| !d.1).count(),
            1,
            "lead same-{l}: {ds:?}"
        );
    }

    // The same order to all three at once, 40 times: one entry set each.
    let at = now_ts();
    let mut tasks = Vec::new();
    for o in 0..40 {
        for channel in channels.iter().cycle().take(6) {
            let channel = channel.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = pb::attribution_client::AttributionClient::new(channel);
                let r = client
                    .record_order(order(1000 + o, 0, at))
                    .await
                    .unwrap()
                    .into_inner();
                (o, r)
            }));
        }
    }
    let mut orders: HashMap<usize, Vec<pb::RecordOrderResponse>> = HashMap::new();
    for t in tasks {
        let (o, r) = t.await.unwrap();
        orders.entry(o).or_default().push(r);
    }
    let mut firsts = Vec::new();
    for rs in orders.values() {
        assert!(
            rs.iter()
                .all(|r| r.event == rs[0].event && r.entries == rs[0].entries)
        );
        assert_eq!(rs.iter().filter(|r| !r.replayed).count(), 1);
        firsts.push(rs[0].clone());
    }
    check_orders(channels[1].clone(), &firsts).await;
    assert_eq!(
        cluster.pg.psql_on(
            &db,
            "SELECT count(*) FROM trail_keys WHERE tag = 'o' AND id LIKE 'c10%'"
        ),
        "40"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_burst_loses_no_acknowledged_order() {
    let mut cluster = Cluster::start(3);
    let channels = cluster.channels().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let burst = tokio::spawn(order_burst(
        channels.clone(),
        stopped,
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    cluster.replicas.remove(0).kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.send(true).unwrap();
    let acked = burst.await.unwrap();
    eprintln!(
        "{} orders acknowledged over three replicas, one killed",
        acked.len()
    );
    assert!(acked.len() >= CLIENTS, "only {} orders", acked.len());
    check_orders(channels[2].clone(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_stopped_mid_burst_loses_nothing_and_replicas_recover() {
    let cluster = Cluster::start(3);
    let channels = cluster.channels().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let burst = tokio::spawn(order_burst(
        channels.clone(),
        stopped,
        Duration::from_secs(40),
    ));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    cluster.pg.stop_immediate();
    // Every replica says so, on gRPC health and /healthz, within a few refreshes.
    for r in &cluster.replicas {
        let started = Instant::now();
        loop {
            let (status, body) = http_get(r.addr, "/healthz").await;
            if status.contains("503") {
                assert!(body.contains("\"not_serving\""), "{body}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} still says {status} {body}",
                r.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(channels[0].clone());
    let said = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "leadrouter.v1.LeadRouter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        said,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    cluster.pg.restart();
    for r in &cluster.replicas {
        let started = Instant::now();
        loop {
            let (status, _) = http_get(r.addr, "/healthz").await;
            if status.contains("200") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} did not recover: {status}",
                r.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.send(true).unwrap();
    let acked = burst.await.unwrap();
    eprintln!(
        "{} orders acknowledged across a database restart",
        acked.len()
    );
    assert!(acked.len() >= CLIENTS, "only {} orders", acked.len());
    check_orders(channels[0].clone(), &acked).await;
}

/// A sled data directory moves into PostgreSQL with `db import`, which checks the copy; the
/// trails export from the database as they did from the directory, verify there, and a server
/// on the database replays the old decisions and orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_directory_moves_into_postgres_whole() {
    let pg = PgCluster::start();
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let network = tempfile::tempdir().unwrap();
    NetworkFiles::from_spec(&tiny_spec(&CAPS))
        .write_dir(network.path())
        .unwrap();
    let bin = Binary::start(dir.path(), &["--network", network.path().to_str().unwrap()]);
    let mut router = pb::lead_router_client::LeadRouterClient::connect(bin.url())
        .await
        .unwrap();
    let mut routed = Vec::new();
    for i in 0..12 {
        let mut req = request(&format!("L{i}"), "440106");
        req.member_id = Some(format!("m{}", i % 4));
        req.channel = pb::Channel::StoreQr as i32;
        routed.push(router.route(req).await.unwrap().into_inner());
    }
    let mut attribution = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    let at = now_ts();
    let mut orders = Vec::new();
    for o in 0..8 {
        orders.push(
            attribution
                .record_order(order(o, 0, at))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    attribution
        .record_refund(pb::RecordRefundRequest {
            refund_id: "r0".into(),
            order_id: orders[0].order_id.clone(),
            amount_cents: Some(50),
            occurred_at: Some(at),
        })
        .await
        .unwrap();
    assert!(bin.terminate().success());

    let d = dir.path().to_str().unwrap();
    let out = cli(&["db", "import", "--from-data-dir", d, "--database-url", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("imported 12 decisions"), "{said}");
    assert!(said.contains("checked in the database: ok"), "{said}");
    // Into a database that holds data: refused, nothing changed.
    let again = cli(&["db", "import", "--from-data-dir", d, "--database-url", &url]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already holds data"),
        "{}",
        text(&again)
    );

    let from_dir = cli(&["trail", "export", "--data-dir", d]);
    let from_db = cli(&["trail", "export", "--database-url", &url]);
    assert!(from_db.status.success(), "{}", text(&from_db));
    assert!(!from_dir.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&from_db.stdout),
        String::from_utf8_lossy(&from_dir.stdout)
    );
    let verified = cli(&["trail", "verify", "--database-url", &url]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).starts_with("ok:"), "{}", text(&verified));
    let status = cli(&["db", "status", "--database-url", &url]);
    assert!(
        text(&status).contains("applied  1 storage"),
        "{}",
        text(&status)
    );
    let migrate = cli(&["db", "migrate", "--database-url", &url]);
    assert!(text(&migrate).contains("up to date"), "{}", text(&migrate));

    // A server on the database serves what the directory held.
    let bin = Binary::serve(&["--database-url", &url]);
    let mut router = pb::lead_router_client::LeadRouterClient::connect(bin.url())
        .await
        .unwrap();
    for r in &routed {
        let mut req = request(&r.lead_id, "440106");
        req.member_id = Some(format!("m{}", r.lead_id[1..].parse::<usize>().unwrap() % 4));
        req.channel = pb::Channel::StoreQr as i32;
        let again = router.route(req).await.unwrap().into_inner();
        assert!(again.replayed);
        assert_eq!(again.decision_id, r.decision_id);
    }
    let mut attribution = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    for o in &orders {
        let v = attribution
            .get_ownership(pb::GetOwnershipRequest {
                order_id: o.order_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.ownership, o.ownership);
        assert_eq!(v.entries.len(), o.entries.len());
    }
    // The imported counts hold: the guides are as full as they were.
    let mut catalog = pb::catalog_client::CatalogClient::connect(bin.url())
        .await
        .unwrap();
    let mut used = 0;
    for g in 0..CAPS.len() {
        used += guide_load(&mut catalog, &format!("G{g}")).await.used;
    }
    assert_eq!(
        used as usize,
        routed.iter().filter(|r| !r.guide_id.is_empty()).count()
    );
}

/// Offers on a live channel expire on time with three replicas sweeping: each moves on once
/// (to the next guide, then into the store's queue), and every guide's capacity comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_expire_once_with_three_sweepers() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[offers]\nchannels = [\"LIVESTREAM\"]\nexpire_secs = 1\nmax_hops = 1\nsweep_every_ms = 50\n",
    )
    .unwrap();
    let cluster = Cluster::start_with(3, &["--config", config.path().to_str().unwrap()]);
    let channels = cluster.channels().await;
    let leads = 12;
    for l in 0..leads {
        let mut client = pb::lead_router_client::LeadRouterClient::new(channels[l % 3].clone());
        let mut req = request(&format!("live-{l}"), "440106");
        req.channel = pb::Channel::Livestream as i32;
        req.member_id = Some(format!("viewer-{l}"));
        let d = client.route(req).await.unwrap().into_inner();
        assert_eq!(d.offer_status, pb::OfferStatus::OfferOpen as i32, "{d:?}");
    }
    let db = cluster.url.rsplit('/').next().unwrap().to_string();
    let started = Instant::now();
    loop {
        let open = cluster.pg.psql_on(
            &db,
            "SELECT count(*) FROM decisions WHERE offer_expires_at IS NOT NULL",
        );
        if open == "0" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{open} offers still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Offered, moved on once, exhausted once: version 3 for every lead.
    assert_eq!(
        cluster.pg.psql_on(
            &db,
            "SELECT string_agg(DISTINCT version::text, ',') FROM decisions"
        ),
        "3"
    );
    assert_eq!(
        cluster
            .pg
            .psql_on(&db, "SELECT coalesce(sum(used), 0) FROM guide_counts"),
        "0"
    );
    // Every viewer's trail tells the same story, once: the same number of offer events each.
    let per_member = cluster.pg.psql_on(
        &db,
        "SELECT string_agg(DISTINCT n::text, ',') FROM (SELECT member_id, count(*) AS n \
         FROM trail_events GROUP BY member_id) t",
    );
    assert!(!per_member.contains(','), "trails differ: {per_member}");
    let mut client = pb::lead_router_client::LeadRouterClient::new(channels[0].clone());
    let mut req = request("live-0", "440106");
    req.channel = pb::Channel::Livestream as i32;
    req.member_id = Some("viewer-0".into());
    let last = client.route(req).await.unwrap().into_inner();
    assert_eq!(last.offer_status, pb::OfferStatus::OfferExhausted as i32);
}

/// Every replica says what it serves; one started with other rule sets is named by the others'
/// `/healthz` (and by its own), within a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_other_rules_is_named_by_the_others() {
    let mut cluster = Cluster::start(2);
    let healthz = |addr| async move {
        let (_, body) = http_get(addr, "/healthz").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let started = Instant::now();
    loop {
        let h = healthz(cluster.replicas[0].addr).await;
        if h["replica"]["others"].as_array().map(Vec::len) == Some(1) {
            assert_eq!(h["replica"]["coherent"], true, "{h}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[policy]\nname = \"nearest\"\n").unwrap();
    cluster.replicas.push(Binary::serve(&[
        "--database-url",
        &cluster.url,
        "--config",
        config.path().to_str().unwrap(),
    ]));
    let odd = cluster.replicas[2].addr.to_string();
    let started = Instant::now();
    loop {
        let h = healthz(cluster.replicas[0].addr).await;
        let others = h["replica"]["others"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(o) = others.iter().find(|o| o["address"] == odd.as_str()) {
            assert_eq!(o["differs"], serde_json::json!(["rules"]), "{h}");
            assert_eq!(h["replica"]["coherent"], false, "{h}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Learned models loaded on one replica reach the others: a replica started without `[models]`
/// serves what another published at its start, and takes up what that one loads on SIGHUP
/// within a few seconds, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_loaded_on_one_replica_reach_the_others() {
    let d = tempfile::tempdir().unwrap();
    let segments = d.path().join("segments.csv");
    let write = |rows: &str| {
        std::fs::write(&segments, format!("member_id,segment\n{rows}")).unwrap();
        leadrouter::app::models::load_member_segments(&segments)
            .unwrap()
            .version
            .clone()
    };
    let first = write("m1,0\nm2,1\n");
    let config = d.path().join("leadrouter.toml");
    std::fs::write(
        &config,
        format!("[models]\nsegments = {:?}\n", segments.to_str().unwrap()),
    )
    .unwrap();
    let mut cluster = Cluster::start_with(1, &["--config", config.to_str().unwrap()]);
    cluster.replicas.push(Binary::serve(&[
        "--database-url",
        &cluster.url,
        "--network",
        cluster._network.path().to_str().unwrap(),
    ]));
    let channels = cluster.channels().await;
    let versions = |n: usize, lead: String| {
        let channel = channels[n].clone();
        async move {
            let mut req = request(&lead, "440106");
            req.member_id = None;
            pb::lead_router_client::LeadRouterClient::new(channel)
                .route(req)
                .await
                .unwrap()
                .into_inner()
                .model_versions
        }
    };
    assert_eq!(versions(0, "a0".into()).await, vec![first.clone()]);
    assert_eq!(
        versions(1, "b0".into()).await,
        vec![first.clone()],
        "taken up at start"
    );
    let second = write("m1,1\nm2,0\nm3,2\n");
    assert_ne!(first, second);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &cluster.replicas[0].child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let started = Instant::now();
    let mut got = Vec::new();
    for i in 0.. {
        got = versions(1, format!("b{}", i + 1)).await;
        if got == vec![second.clone()] || started.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, vec![second.clone()], "taken up without a restart");
    assert_eq!(versions(0, "a1".into()).await, vec![second]);
}

/// The rule sets that carry money reach every replica: one started with a configuration that
/// names binding rule sets publishes them (audited), the others route by them within a few
/// seconds, a SIGHUP after the file changed publishes the new ones, and a bad file changes
/// nothing anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_sets_published_by_one_replica_reach_the_others() {
    let mut cluster = Cluster::start(1);
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("leadrouter.toml");
    let rules = |version: &str| {
        format!("[[bindings]]\nversion = {version:?}\neffective_from = \"2020-01-01\"\n")
    };
    std::fs::write(&config, rules("bind-2")).unwrap();
    cluster.replicas.push(Binary::serve(&[
        "--database-url",
        &cluster.url,
        "--network",
        cluster._network.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]));
    let channels = cluster.channels().await;
    let decided_by = |n: usize, lead: String| {
        let channel = channels[n].clone();
        async move {
            pb::lead_router_client::LeadRouterClient::new(channel)
                .route(request(&lead, "440106"))
                .await
                .unwrap()
                .into_inner()
                .binding
                .map(|b| b.decided_by_rule_version)
                .unwrap_or_default()
        }
    };
    let until = async |n: usize, want: &str| {
        let started = Instant::now();
        let mut got = String::new();
        for i in 0.. {
            got = decided_by(n, format!("{want}-{n}-{i}")).await;
            if got == want || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got
    };
    assert_eq!(decided_by(1, "mine".into()).await, "bind-2");
    assert_eq!(
        until(0, "bind-2").await,
        "bind-2",
        "the first replica follows"
    );

    std::fs::write(&config, rules("bind-3")).unwrap();
    let hup = |pid: u32| {
        assert!(
            std::process::Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    hup(cluster.replicas[1].child.id());
    assert_eq!(
        until(0, "bind-3").await,
        "bind-3",
        "taken up without a restart"
    );

    // Two rule sets with one version: refused where it was loaded, and nowhere published.
    std::fs::write(&config, format!("{}{}", rules("bind-4"), rules("bind-4"))).unwrap();
    hup(cluster.replicas[1].child.id());
    let started = Instant::now();
    loop {
        let (_, body) = http_get(cluster.replicas[1].addr, "/metrics").await;
        if body.contains("leadrouter_rule_reloads_total{result=\"failed\"} 1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(decided_by(1, "after-bad-1".into()).await, "bind-3");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(decided_by(0, "after-bad-0".into()).await, "bind-3");
    let db = cluster.url.rsplit('/').next().unwrap().to_string();
    let published = cluster.pg.psql_on(
        &db,
        "SELECT count(*) FROM audit WHERE line LIKE '%rules.publish%'",
    );
    assert_eq!(published, "2", "each publication audited");
}

/// Offer streams on three replicas: each store's stream on every replica tells the same events
/// with the same ids in the same order, whichever replica routed or answered, and a stream
/// resumed on another replica from the last id it saw continues it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_tells_each_store_the_same_offer_events_in_one_order() {
    use pb::guides_client::GuidesClient;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[offers]\nchannels = [\"LIVESTREAM\"]\nexpire_secs = 60\nmax_hops = 1\n",
    )
    .unwrap();
    let cluster = Cluster::start_with(3, &["--config", config.path().to_str().unwrap()]);
    let channels = cluster.channels().await;
    let watch = |c: Channel, store: String, after: String| async move {
        GuidesClient::new(c)
            .watch_offers(pb::WatchOffersRequest {
                guide_id: String::new(),
                store_id: store,
                after_event_id: after,
            })
            .await
            .unwrap()
            .into_inner()
    };
    // streams[replica][store]
    let mut streams = Vec::new();
    for c in &channels {
        let mut per = Vec::new();
        for s in 0..3 {
            per.push(watch(c.clone(), format!("S{s}"), String::new()).await);
        }
        streams.push(per);
    }
    // 12 offers from 12 concurrent clients over the replicas; 4 declined (re-offered once).
    let leads = 12;
    let tasks: Vec<_> = (0..leads)
        .map(|l| {
            let c = channels[l % 3].clone();
            let answer_on = channels[(l + 1) % 3].clone();
            tokio::spawn(async move {
                let mut req = request(&format!("live-{l}"), "440106");
                req.channel = pb::Channel::Livestream as i32;
                let d = pb::lead_router_client::LeadRouterClient::new(c)
                    .route(req)
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(d.offer_status, pb::OfferStatus::OfferOpen as i32, "{d:?}");
                if l % 3 == 0 {
                    pb::lead_router_client::LeadRouterClient::new(answer_on)
                        .respond_to_offer(pb::RespondToOfferRequest {
                            lead_id: d.lead_id,
                            guide_id: d.guide_id,
                            answer: pb::OfferAnswer::Decline as i32,
                            reason: String::new(),
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // 12 offered, and per decline one left and one offered: 20 events over the stores.
    let expected = leads + 2 * leads.div_ceil(3);
    let mut told: Vec<Vec<Vec<pb::OfferUpdate>>> = vec![vec![vec![]; 3]; 3];
    let started = Instant::now();
    for (r, per) in streams.iter_mut().enumerate() {
        while told[r].iter().map(Vec::len).sum::<usize>() < expected {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "replica {r} told {:?} of {expected}",
                told[r].iter().map(Vec::len).collect::<Vec<_>>()
            );
            for (s, st) in per.iter_mut().enumerate() {
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(50), st.message()).await {
                    told[r][s].push(m.unwrap().unwrap());
                }
            }
        }
    }
    let ids = |v: &[pb::OfferUpdate]| v.iter().map(|u| u.event_id.clone()).collect::<Vec<_>>();
    for (s, first) in told[0].iter().enumerate() {
        assert_eq!(ids(first), ids(&told[1][s]), "store S{s}, replicas 0 and 1");
        assert_eq!(ids(first), ids(&told[2][s]), "store S{s}, replicas 0 and 2");
        assert!(first.iter().all(|u| u.store_id == format!("S{s}")));
    }
    let mut offered: Vec<String> = told[0]
        .iter()
        .flatten()
        .filter(|u| u.kind == pb::OfferUpdateKind::OfferUpdateOffered as i32 && u.version == 1)
        .map(|u| u.lead_id.clone())
        .collect();
    offered.sort();
    offered.dedup();
    assert_eq!(offered.len(), leads, "every first offer told once");
    // Resumed on another replica after the first event of a busy store: the rest, exactly.
    let busiest = (0..3).max_by_key(|&s| told[0][s].len()).unwrap();
    let first = told[0][busiest][0].event_id.clone();
    let mut resumed = watch(channels[2].clone(), format!("S{busiest}"), first).await;
    for want in &told[0][busiest][1..] {
        let got = tokio::time::timeout(Duration::from_secs(10), resumed.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.event_id, want.event_id);
    }
    let quiet = tokio::time::timeout(Duration::from_millis(500), resumed.message()).await;
    assert!(quiet.is_err(), "nothing more: {quiet:?}");
}
