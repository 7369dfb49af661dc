//! The HTTP/1.1 server every mode runs on: binds 127.0.0.1 only, buffers each request body and
//! hands the request to the mode's [`Handler`].
//!
//! Limits: a request whose `Content-Length` is over [`MAX_BODY`] is answered 413 at once,
//! without reading the body, and the connection is closed; a body that grows past the limit
//! without a `Content-Length` (chunked) gets the same answer when it crosses it. At most
//! [`MAX_CONNECTIONS`] connections are served at a time; further ones wait in the listen queue
//! until one closes. A client has [`HEADER_TIMEOUT`] to send a request's headers, which also
//! closes a keep-alive connection left idle that long (as the services' load balancers do), so
//! idle clients cannot hold every slot.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// A request with its whole body.
pub type Request = hyper::Request<Bytes>;
/// A response with its whole body.
pub type Response = hyper::Response<Full<Bytes>>;

/// The future a [`Handler`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A mode's request handler.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Errors are answered in the mode's own wire format, so this
    /// cannot fail.
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture;
}

/// The largest request body accepted (16 MiB, well above what any emulated operation takes:
/// AWS KMS and Cloud KMS data fields stop at 4 KiB and 64 KiB); larger requests get 413.
pub const MAX_BODY: usize = 16 << 20;

/// The most connections served at once; further ones wait until one closes.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client may take to send a request's headers (or leave a keep-alive connection
/// idle) before the connection is closed.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A server serving in the background; dropping it stops accepting and closes connections.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    scheme: &'static str,
    stop: watch::Sender<bool>,
    /// One permit per connection not being served: all free = no connection open.
    slots: Arc<Semaphore>,
}

impl Running {
    /// The address the server listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` (or `https://` for a TLS server).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting, lets every open connection finish its request in flight (idle
    /// keep-alive connections are closed), and waits up to `grace` for them to close.
    /// Returns whether every connection closed in time.
    pub async fn shutdown(self, grace: std::time::Duration) -> bool {
        let _ = self.stop.send(true);
        let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
        let slots = self.slots.clone();
        matches!(tokio::time::timeout(grace, slots.acquire_many(all)).await, Ok(Ok(_)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds 127.0.0.1:`port` (0 picks a free port) and serves `handler` over plain HTTP on the
/// current tokio runtime.
///
/// # Errors
/// When the port cannot be bound.
pub async fn serve_http(port: u16, handler: Arc<dyn Handler>) -> io::Result<Running> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let running_slots = slots.clone();
    tokio::spawn(async move {
        loop {
            let Some(slot) = acquire(&slots, &mut stopped).await else { break };
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let (handler, stopped) = (handler.clone(), stopped.clone());
                    tokio::spawn(async move {
                        serve_connection(stream, handler, stopped).await;
                        drop(slot);
                    });
                }
            }
        }
    });
    Ok(Running { addr, scheme: "http", stop, slots: running_slots })
}

/// Binds 127.0.0.1:`port` (0 picks a free port) and serves `handler` over TLS with `tls` on
/// the current tokio runtime. Connections whose handshake fails are dropped; the server keeps
/// accepting others. Clients offering ALPN get HTTP/1.1 only (set in `tls` by the caller, e.g.
/// `alpn_protocols = vec![b"http/1.1".to_vec()]`).
///
/// # Errors
/// When the port cannot be bound.
pub async fn serve_https(
    port: u16,
    handler: Arc<dyn Handler>,
    tls: Arc<rustls::ServerConfig>,
) -> io::Result<Running> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop, mut stopped) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let running_slots = slots.clone();
    tokio::spawn(async move {
        loop {
            let Some(slot) = acquire(&slots, &mut stopped).await else { break };
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let (acceptor, handler, stopped) = (acceptor.clone(), handler.clone(), stopped.clone());
                    tokio::spawn(async move {
                        let handshake = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(stream),
                        );
                        if let Ok(Ok(tls)) = handshake.await {
                            serve_connection(tls, handler, stopped).await;
                        }
                        drop(slot);
                    });
                }
            }
        }
    });
    Ok(Running { addr, scheme: "https", stop, slots: running_slots })
}

/// Waits for a free connection slot; `None` once the server stops.
async fn acquire(
    slots: &Arc<Semaphore>,
    stopped: &mut watch::Receiver<bool>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        _ = stopped.changed() => None,
        permit = slots.clone().acquire_owned() => permit.ok(),
    }
}

/// 413 with `Connection: close`: the body is not read.
fn too_large() -> Response {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"request body too large")));
    *resp.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
    resp.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    resp
}

/// Serves one connection (any byte stream: TCP, or TLS over TCP) until it closes or the
/// server stops.
pub async fn serve_connection<S>(stream: S, handler: Arc<dyn Handler>, mut stopped: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let declared = parts.headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
            if declared.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > MAX_BODY as u64) {
                return Ok::<_, std::convert::Infallible>(too_large());
            }
            let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(too_large()),
            };
            Ok(handler.handle(hyper::Request::from_parts(parts, body)).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopped.changed() => {}
    }
    // Stopping: finish the request in flight (an idle connection closes at once).
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(HEADER_TIMEOUT, conn.as_mut()).await;
}

/// Scheme helper for TLS servers built on [`serve_connection`].
pub fn running(addr: SocketAddr, scheme: &'static str, stop: watch::Sender<bool>) -> Running {
    Running { addr, scheme, stop, slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)) }
}
