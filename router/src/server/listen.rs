//! The accept loop: TLS or plain TCP, HTTP/1.1 and h2 on one port (hyper's auto builder), and
//! the limits that keep one caller from holding the service: connections in all and per peer,
//! a handshake-and-first-request deadline, idle connections closed, streams per connection,
//! header size and HTTP/1.1 header timeouts. Stopping drains connections, then returns.

use crate::config::LimitsConfig;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Connections closed or refused by a limit, by reason.
pub const CONNECTIONS_CLOSED: &str = "leadrouter_connections_closed_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "leadrouter_connections_open";

/// How the port is served.
#[derive(Clone, Default)]
pub struct Transport {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: LimitsConfig,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Requests in flight on one connection, and when the last one began or ended.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.requests.fetch_add(1, Ordering::Relaxed);
        a.touch();
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One peer's share of the connections.
struct PeerSlot {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerSlot {
    fn take(peers: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = peers.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            peers: peers.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.peers.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

fn closed(reason: &'static str) {
    metrics::counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
}

fn builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(64 * 1024 + limits.max_message_bytes.min(1 << 20));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(Some(64))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves `app` on `listener` until `shutdown` completes, then lets connections finish their
/// calls (at most `limits.request_timeout_ms` more) and returns.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = transport.limits.clone();
    let tls = transport.tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Arc::new(Mutex::new(HashMap::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let builder = builder(&limits);
    let open = metrics::gauge!(CONNECTIONS_OPEN);
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            closed("max_connections");
            continue;
        };
        let Some(peer_slot) = PeerSlot::take(&peers, peer.ip(), limits.max_connections_per_peer)
        else {
            closed("max_connections_per_peer");
            continue;
        };
        // Without TCP_NODELAY a reply written in several segments waits for the peer's delayed
        // ACK (40 ms on Linux) before its last segment goes out.
        let _ = tcp.set_nodelay(true);
        let (app, builder, limits, tls, stop, open) = (
            app.clone(),
            builder.clone(),
            limits.clone(),
            tls.clone(),
            stop_rx.clone(),
            open.clone(),
        );
        tasks.spawn(async move {
            open.increment(1.0);
            connection(tcp, tls, app, &builder, &limits, stop).await;
            open.decrement(1.0);
            drop((slot, peer_slot));
        });
    }
    let _ = stop_tx.send(true);
    let drain = Duration::from_millis(limits.request_timeout_ms) + Duration::from_secs(1);
    let _ = tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    Ok(())
}

async fn connection(
    tcp: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: &LimitsConfig,
    stop: watch::Receiver<bool>,
) {
    let first = Duration::from_millis(limits.header_timeout_ms);
    match tls {
        None => serve_io(tcp, app, builder, limits, stop).await,
        Some(acceptor) => match tokio::time::timeout(first, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => serve_io(stream, app, builder, limits, stop).await,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                closed("tls_handshake");
            }
            Err(_) => closed("tls_handshake_timeout"),
        },
    }
}

async fn serve_io<I>(
    io: I,
    app: axum::Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: &LimitsConfig,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        last_ms: AtomicU64::new(0),
    });
    let seen = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let guard = InFlight::begin(&seen);
        let app = app.clone();
        async move {
            let response = app.oneshot(req.map(Body::new)).await?;
            // The request counts as in flight until its reply's body has gone out (streams).
            Ok::<_, Infallible>(response.map(|b| {
                Body::new(b.map_frame(move |f| {
                    let _ = &guard;
                    f
                }))
            }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let first = Duration::from_millis(limits.header_timeout_ms);
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    let mut tick = tokio::time::interval((first / 2).min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        let deadline =
            draining.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed(), if draining.is_none() => {
                conn.as_mut().graceful_shutdown();
                draining = Some(tokio::time::Instant::now() + Duration::from_millis(limits.request_timeout_ms));
            }
            _ = tick.tick(), if draining.is_none() => {
                if activity.in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                let quiet = activity
                    .started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(activity.last_ms.load(Ordering::Relaxed)));
                let (limit, reason) = if activity.requests.load(Ordering::Relaxed) == 0 {
                    (first, "silent")
                } else {
                    (idle, "idle")
                };
                if quiet >= limit {
                    closed(reason);
                    conn.as_mut().graceful_shutdown();
                    draining = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
            }
            () = tokio::time::sleep_until(deadline), if draining.is_some() => return,
        }
    }
}
