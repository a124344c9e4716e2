//! The reviewers' pages over plain HTTP/1.1 on a server without keys (loopback): signing in by
//! name, the session cookie's attributes, refused forms and bad filters. The browser test
//! (`tests/python/test_review_pages.py`) drives the same pages with keys in Chromium.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_sign_in_refuse_bad_forms_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5; 3])).await;
    let a = server.addr;

    // Not signed in: the sign-in page (by name, as the service has no keys), in Chinese.
    let (status, headers, body) = http_call(a, "GET", "/review/", "", "").await;
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("name=\"name\"") && body.contains("登录"),
        "{body}"
    );
    assert!(headers.contains("content-security-policy: default-src 'self'"));
    assert!(headers.contains("x-frame-options: deny"));
    let (_, _, body) = http_call(a, "GET", "/review/", "Accept-Language: en-GB,en\r\n", "").await;
    assert!(body.contains("Sign in"));

    // A name that is no id is refused; a good one gets the session cookie.
    let (status, _, _) = http_call(a, "POST", "/review/login", "", "name=").await;
    assert!(status.contains("401"), "{status}");
    let (status, headers, _) = http_call(a, "POST", "/review/login", "", "name=rev-zhao").await;
    assert!(status.contains("303"), "{status}");
    let set = headers
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a session cookie");
    for attr in ["httponly", "samesite=strict", "path=/review"] {
        assert!(set.contains(attr), "{set}");
    }
    let value = set
        .trim_start_matches("set-cookie:")
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie = format!("Cookie: {value}\r\n");

    // Signed in: the queue; a bad filter is named.
    let (status, _, body) = http_call(a, "GET", "/review/", &cookie, "").await;
    assert!(
        status.contains("200") && body.contains("rev-zhao"),
        "{status}"
    );
    let (status, _, body) = http_call(a, "GET", "/review/?older_than_days=soon", &cookie, "").await;
    assert!(
        status.contains("400") && body.contains("older_than_days"),
        "{status}"
    );
    let (status, _, body) = http_call(a, "GET", "/review/?status=lost", &cookie, "").await;
    assert!(
        status.contains("400") && body.contains("status: must be"),
        "{status}"
    );
    // An unknown dispute, and a tampered cookie.
    let (status, _, _) = http_call(a, "GET", "/review/dispute?id=D404", &cookie, "").await;
    assert!(status.contains("404"), "{status}");
    let forged = cookie
        .replacen("rev", "rex", 1)
        .replace("lr_review=", "lr_review=00");
    let (_, _, body) = http_call(a, "GET", "/review/", &forged, "").await;
    assert!(
        body.contains("name=\"name\""),
        "a forged cookie is no session"
    );
    // A form without its CSRF token changes nothing.
    let (status, _, _) = http_call(
        a,
        "POST",
        "/review/resolve",
        &cookie,
        "id=D1&outcome=uphold&reason=x&confirm=1",
    )
    .await;
    assert!(status.contains("403"), "{status}");
    // The script is served from here, cacheable.
    let (status, headers, body) = http_call(a, "GET", "/review/htmx.min.js", "", "").await;
    assert!(status.contains("200") && headers.contains("text/javascript"));
    assert!(body.len() > 10_000);
    server.stop().await;
}
