//! The shared HTTP server: loopback only, bodies buffered, stops when dropped.

use std::sync::Arc;

use hsm_emulator::server::{Handler, HandlerFuture, Request, Response, serve_http};
use http_body_util::Full;

struct Echo;

impl Handler for Echo {
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture {
        Box::pin(async move { Response::new(Full::new(req.into_body())) })
    }
}

async fn post(addr: std::net::SocketAddr, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head =
        format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn serves_on_loopback_and_stops_when_dropped() {
    let running = serve_http(0, Arc::new(Echo)).await.unwrap();
    let addr = running.addr();
    assert!(addr.ip().is_loopback());
    assert!(running.url().starts_with("http://127.0.0.1:"));
    let answer = post(addr, b"ping").await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ping"), "{text}");
    drop(running);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after drop");
}

#[tokio::test]
async fn refuses_oversized_bodies() {
    let running = serve_http(0, Arc::new(Echo)).await.unwrap();
    let big = vec![0u8; hsm_emulator::server::MAX_BODY + 1];
    let answer = post(running.addr(), &big).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&answer[..answer.len().min(64)]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}
