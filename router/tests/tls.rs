//! TLS on the service port with certificates made here (rcgen): gRPC over h2 from tonic, plain
//! HTTP/1.1 on the same port (ALPN), mutual TLS, and connection limits on a plain port.

mod common;

use common::*;
use leadrouter::config::LimitsConfig;
use leadrouter::engine::EngineConfig;
use leadrouter::server::{Options, Transport};
use leadrouter_proto::v1 as pb;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

fn tls_options(p: &Pki, mutual: bool) -> Options {
    let tls =
        leadrouter::server::tls::server_config(&p.cert, &p.key, mutual.then_some(p.ca.as_path()))
            .unwrap();
    Options {
        transport: Transport {
            tls: Some(tls),
            limits: LimitsConfig::default(),
        },
        ..Options::default()
    }
}

async fn tls_router(
    addr: std::net::SocketAddr,
    tls: ClientTlsConfig,
) -> Result<pb::lead_router_client::LeadRouterClient<tonic::transport::Channel>, String> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))?;
    Ok(pb::lead_router_client::LeadRouterClient::new(channel))
}

/// GET over TLS with ALPN http/1.1 only (a plain HTTP client).
async fn https_get(addr: std::net::SocketAddr, ca: &Path, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_share_the_tls_port() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let p = pki(certs.path());
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        tls_options(&p, false),
    )
    .await;
    let ca = Certificate::from_pem(std::fs::read(&p.ca).unwrap());
    let mut r = tls_router(server.addr, ClientTlsConfig::new().ca_certificate(ca))
        .await
        .unwrap();
    let d = r
        .route(request("L-tls", "440106"))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.guide_id.is_empty());
    let page = https_get(server.addr, &p.ca, "/healthz").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("\"status\":\"serving\""), "{page}");
    // Plain text on the TLS port gets no answer.
    let mut plain = pb::lead_router_client::LeadRouterClient::connect(server.url())
        .await
        .unwrap();
    assert!(plain.route(request("L-plain", "440106")).await.is_err());
    // A client that does not trust the CA is refused.
    let other = tempfile::tempdir().unwrap();
    let stranger = pki(other.path());
    let ca2 = Certificate::from_pem(std::fs::read(&stranger.ca).unwrap());
    let refused = match tls_router(server.addr, ClientTlsConfig::new().ca_certificate(ca2)).await {
        Err(_) => true,
        Ok(mut c) => c.route(request("L-x", "440106")).await.is_err(),
    };
    assert!(refused);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let p = pki(certs.path());
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        tls_options(&p, true),
    )
    .await;
    let ca = Certificate::from_pem(std::fs::read(&p.ca).unwrap());
    let without = match tls_router(
        server.addr,
        ClientTlsConfig::new().ca_certificate(ca.clone()),
    )
    .await
    {
        Err(_) => true,
        Ok(mut c) => c.route(request("L-anon", "440106")).await.is_err(),
    };
    assert!(without, "a client without a certificate was served");
    let id = Identity::from_pem(&p.client_cert, &p.client_key);
    let mut r = tls_router(
        server.addr,
        ClientTlsConfig::new().ca_certificate(ca).identity(id),
    )
    .await
    .unwrap();
    let d = r
        .route(request("L-mtls", "440106"))
        .await
        .unwrap()
        .into_inner();
    assert!(!d.guide_id.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_surplus_connections_are_closed_and_callers_still_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        transport: Transport {
            tls: None,
            limits: LimitsConfig {
                max_connections_per_peer: 8,
                header_timeout_ms: 300,
                ..LimitsConfig::default()
            },
        },
        ..Options::default()
    };
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[50, 50, 50]),
        EngineConfig::default(),
        options,
    )
    .await;
    // Twenty silent connections from one peer: beyond 8 they are closed at once, the rest once
    // the first-request deadline passes.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let started = Instant::now();
    let mut closed = 0;
    for s in &mut silent {
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            other => panic!("a silent connection got {other:?}"),
        }
    }
    assert_eq!(closed, 20);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A caller gets through afterwards.
    let mut r = server.router().await;
    r.route(request("L-after", "440106")).await.unwrap();
    let (status, body) = http_get(server.addr, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.contains("leadrouter_connections_closed_total{reason=\"silent\"}"),
        "{body}"
    );
    assert!(body.contains("reason=\"max_connections_per_peer\""));
    server.stop().await;
}
