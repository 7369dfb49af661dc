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

/// A chunked body (no `Content-Length`) is cut off with 413 as soon as it crosses the limit.
#[tokio::test]
async fn refuses_oversized_chunked_bodies() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let running = serve_http(0, Arc::new(Echo)).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(running.addr()).await.unwrap();
    let len = hsm_emulator::server::MAX_BODY + 1;
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
    // One chunk one byte over the limit, and nothing after it: the server has read every
    // byte sent when it answers, so closing does not reset the connection.
    s.write_all(format!("{len:x}\r\n").as_bytes()).await.unwrap();
    s.write_all(&vec![0u8; len]).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer to an oversized chunked body");
    let text = String::from_utf8_lossy(&out[..out.len().min(64)]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

/// A `Content-Length` over the limit is answered at once, before any body byte is sent.
#[tokio::test]
async fn refuses_a_huge_content_length_without_waiting_for_the_body() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let running = serve_http(0, Arc::new(Echo)).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(running.addr()).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000000\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server waited for a terabyte body instead of answering");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
}

/// Connections past the limit wait instead of being served (or crashing the server) and are
/// served as soon as a slot frees.
#[tokio::test]
async fn bounds_concurrent_connections() {
    use hsm_emulator::server::MAX_CONNECTIONS;
    let running = serve_http(0, Arc::new(Echo)).await.unwrap();
    let addr = running.addr();
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Give the accept loop time to take every slot.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let waiting = tokio::spawn(post(addr, b"queued"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a connection past the limit was served");
    idle.truncate(MAX_CONNECTIONS - 1);
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("queued"), "{text}");
}
