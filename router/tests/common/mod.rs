//! Helpers for black-box tests: a real server on port 0, the real binary, clients.
#![allow(dead_code)]

use leadrouter::catalog::{
    GuideSpec, GuideStatus, Network, NetworkSpec, Ownership, PreferenceRow, Pricing, RegionTree,
    StoreSpec, demo_files,
};
use leadrouter::clock::SystemClock;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::storage::{SledConfig, SledStore};
use leadrouter_proto::v1 as pb;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts `server::run` on 127.0.0.1:0 over a sled store in `dir`.
    pub async fn start(dir: &Path, network: Network) -> Self {
        Self::start_with(dir, network, EngineConfig::default()).await
    }

    /// As [`TestServer::start`], but serves the network saved in `dir` when there is one
    /// (as `leadrouter serve` does), else `fallback` (saved).
    pub async fn start_saved(dir: &Path, fallback: Network) -> Self {
        use leadrouter::storage::Networks;
        let store = Arc::new(SledStore::open(dir, &SledConfig::default()).unwrap());
        let network = match store.network().unwrap() {
            Some(spec) => Network::build(Arc::new(RegionTree::embedded()), spec).unwrap(),
            None => {
                leadrouter::app::save_network(store.as_ref(), &fallback).unwrap();
                fallback
            }
        };
        Self::serve(store, network, EngineConfig::default()).await
    }

    pub async fn start_with(dir: &Path, network: Network, cfg: EngineConfig) -> Self {
        let store = Arc::new(SledStore::open(dir, &SledConfig::default()).unwrap());
        Self::serve(store, network, cfg).await
    }

    async fn serve(store: Arc<SledStore>, network: Network, cfg: EngineConfig) -> Self {
        Self::serve_with(store, network, cfg, Default::default()).await
    }

    /// Serves with keys, TLS or limits (`server::run_with`).
    pub async fn start_options(
        dir: &Path,
        network: Network,
        cfg: EngineConfig,
        options: leadrouter::server::Options,
    ) -> Self {
        let store = Arc::new(SledStore::open(dir, &SledConfig::default()).unwrap());
        Self::serve_with(store, network, cfg, options).await
    }

    async fn serve_with(
        store: Arc<SledStore>,
        network: Network,
        cfg: EngineConfig,
        options: leadrouter::server::Options,
    ) -> Self {
        let engine = Arc::new(Engine::new(network, store, Arc::new(SystemClock), cfg).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let services =
            leadrouter::server::Services::new(engine.clone(), Default::default()).unwrap();
        let task = tokio::spawn(async move {
            leadrouter::server::run_with(listener, services, options, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            engine,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn router(
        &self,
    ) -> pb::lead_router_client::LeadRouterClient<tonic::transport::Channel> {
        pb::lead_router_client::LeadRouterClient::connect(self.url())
            .await
            .unwrap()
    }

    pub async fn attribution(
        &self,
    ) -> pb::attribution_client::AttributionClient<tonic::transport::Channel> {
        pb::attribution_client::AttributionClient::connect(self.url())
            .await
            .unwrap()
    }

    pub async fn disputes(&self) -> pb::disputes_client::DisputesClient<tonic::transport::Channel> {
        pb::disputes_client::DisputesClient::connect(self.url())
            .await
            .unwrap()
    }

    pub async fn catalog(&self) -> pb::catalog_client::CatalogClient<tonic::transport::Channel> {
        pb::catalog_client::CatalogClient::connect(self.url())
            .await
            .unwrap()
    }

    /// Stops gracefully and waits (the store is flushed and closed).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        // Wait for the last reference to the sled Db (held by the engine) to go.
        let engine = self.engine.clone();
        drop(self);
        for _ in 0..200 {
            if Arc::strong_count(&engine) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn demo() -> Network {
    demo_files().load(Arc::new(RegionTree::embedded())).unwrap()
}

/// One district (天河 440106) with three stores and guides of capacity `caps`.
pub fn tiny_spec(caps: &[u32]) -> NetworkSpec {
    let stores: Vec<StoreSpec> = (0..3)
        .map(|i| StoreSpec {
            store_id: format!("S{i}"),
            name: format!("天河{i}号店"),
            region_code: "440106".into(),
            lat: 23.13 + 0.01 * i as f64,
            lon: 113.33,
            ownership: Ownership::Direct,
            pricing: Pricing::FullPrice,
            categories: vec!["shoes".into(), "kids".into()],
            open: true,
        })
        .collect();
    NetworkSpec {
        categories: vec!["shoes".into(), "kids".into()],
        preference: vec![PreferenceRow {
            region_code: "nationwide".into(),
            values: vec![0.6, 0.4],
        }],
        stores,
        guides: caps
            .iter()
            .enumerate()
            .map(|(i, &c)| GuideSpec {
                guide_id: format!("G{i}"),
                store_id: format!("S{}", i % 3),
                name: format!("guide {i}"),
                daily_capacity: c,
                tier: 3,
                status: GuideStatus::Active,
            })
            .collect(),
    }
}

pub fn tiny(caps: &[u32]) -> Network {
    Network::build(Arc::new(RegionTree::embedded()), tiny_spec(caps)).unwrap()
}

pub fn now_ts() -> leadrouter_proto::Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    leadrouter_proto::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: 0,
    }
}

pub fn request(lead_id: &str, region: &str) -> pb::RouteRequest {
    pb::RouteRequest {
        lead_id: lead_id.into(),
        member_id: Some(format!("m-{lead_id}")),
        channel: pb::Channel::MiniProgram as i32,
        region_code: region.into(),
        location: None,
        interests: vec![],
        referrer_guide_id: None,
        occurred_at: Some(now_ts()),
        max_alternatives: None,
    }
}

/// One guide's load today, through the Catalog service.
pub async fn guide_load(
    catalog: &mut pb::catalog_client::CatalogClient<tonic::transport::Channel>,
    guide_id: &str,
) -> pb::GuideLoad {
    catalog
        .get_guide_load(pb::GetGuideLoadRequest {
            guide_id: guide_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// GET over plain HTTP/1.1; returns (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    http_get_with(addr, path, "").await
}

/// As [`http_get`] with more header lines (each ending in `\r\n`).
pub async fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let (status, _, body) = http_call(addr, "GET", path, headers, "").await;
    (status, body)
}

/// One plain HTTP/1.1 request, with a form body when `body` is not empty; returns (status
/// line, headers in lower case, body).
pub async fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let form = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}{form}\r\n{body}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.into(), headers.to_ascii_lowercase(), body.into())
}

/// The real binary, serving on a free port; the address is read from its first stdout line.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Binary {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--data-dir", data_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::serve(&args)
    }

    /// `leadrouter serve --listen 127.0.0.1:0` with `args`.
    pub fn serve(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leadrouter"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("leadrouter listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends bytes as they are and returns the reply's bytes: any method, any body.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut v = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

/// One call of `path` with `body` as it is, on `channel`.
pub async fn raw_on(
    channel: tonic::transport::Channel,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(body);
    if let Some(k) = key {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::try_from(path.to_string()).unwrap();
    grpc.unary(req, path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// Every method of the contract's services, as `/package.Service/Method`.
pub fn contract_methods() -> Vec<String> {
    let fds = <prost_types::FileDescriptorSet as prost::Message>::decode(
        leadrouter_proto::FILE_DESCRIPTOR_SET,
    )
    .unwrap();
    let mut out = Vec::new();
    for f in &fds.file {
        for s in &f.service {
            for m in &s.method {
                out.push(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
            }
        }
    }
    out
}

/// Every acknowledged order is there with its entries (summing to its amount) exactly once in
/// its member's trail, and the trails of members `m0`..`m{members - 1}` chain.
pub async fn orders_exactly_once(
    client: &mut pb::attribution_client::AttributionClient<tonic::transport::Channel>,
    acked: &[pb::RecordOrderResponse],
    members: usize,
) {
    for a in acked {
        let v = client
            .get_ownership(pb::GetOwnershipRequest {
                order_id: a.order_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged order {} was lost: {e}", a.order_id))
            .into_inner();
        assert_eq!(v.entries, a.entries, "{}", a.order_id);
        assert_eq!(
            v.entries.iter().map(|e| e.amount_cents).sum::<i64>(),
            v.amount_cents
        );
    }
    let mut seen: std::collections::HashMap<String, u32> = Default::default();
    for m in 0..members {
        let member = format!("m{m}");
        let mut token = String::new();
        loop {
            let page = client
                .get_trail(pb::GetTrailRequest {
                    member_id: member.clone(),
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for e in page.events {
                if let Some(pb::trail_event::Body::Order(o)) = e.body {
                    *seen.entry(o.order_id).or_default() += 1;
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let v = client
            .verify_trail(pb::VerifyTrailRequest {
                member_id: member.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.ok, "{member}: {v:?}");
    }
    assert!(seen.values().all(|n| *n == 1), "an order twice: {seen:?}");
    for a in acked {
        assert_eq!(seen.get(&a.order_id), Some(&1), "{}", a.order_id);
    }
}

/// A CA, a server certificate for localhost and 127.0.0.1, and a client certificate, as PEM
/// files in `dir`.
pub struct Pki {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub client_cert: String,
    pub client_key: String,
}

pub fn pki(dir: &Path) -> Pki {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "leadrouter test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca).unwrap();
    let mut client = rcgen::CertificateParams::new(vec!["client.test".to_string()]).unwrap();
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &ca).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("server.pem", server_cert.pem()),
        key: write("server.key", server_key.serialize_pem()),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// Runs the real binary's command line (without the caller's database settings, so that a
/// developer's environment cannot choose the backend); waits for it.
pub fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leadrouter"))
        .args(args)
        .env_remove("LEADROUTER_DATABASE_URL")
        .env_remove("LEADROUTER_DATABASE_CA")
        .output()
        .unwrap()
}

/// What a command printed: stdout, then stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
