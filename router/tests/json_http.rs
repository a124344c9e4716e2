//! JSON over HTTP/2 (prior knowledge, as a gateway or an h2 client sends it) to the real binary:
//! the same JSON surface as over HTTP/1.1 (`tests/python/test_json_http.py`), through a tonic
//! channel used as a plain HTTP/2 client.

mod common;

use common::*;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn post(channel: tonic::transport::Channel, path: &str, body: &str) -> (u16, String) {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://test{path}"))
        .header("content-type", "application/json")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(body.to_string()),
        )))
        .unwrap();
    let resp = channel.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_over_h2_is_served_like_over_http1() {
    let d = tempfile::tempdir().unwrap();
    let bin = Binary::start(&d.path().join("data"), &[]);
    let channel = tonic::transport::Channel::from_shared(bin.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (status, body) = post(channel.clone(), "/leadrouter.v1.LeadRouter/Ping", "{}").await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let lead = serde_json::json!({
        "leadId": "h2-1",
        "channel": "MINI_PROGRAM",
        "regionCode": "440106",
        "occurredAt": chrono::Utc::now().to_rfc3339(),
    });
    let (status, body) = post(
        channel.clone(),
        "/leadrouter.v1.LeadRouter/Route",
        &lead.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let routed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(routed["leadId"], "h2-1");
    assert!(
        routed["guideId"].as_str().is_some_and(|g| !g.is_empty()),
        "{body}"
    );
    let (status, body) = post(
        channel,
        "/leadrouter.v1.LeadRouter/Route",
        r#"{"leadId":7}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "invalid_argument");
    assert!(bin.terminate().success());
}
