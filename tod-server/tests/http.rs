//! The HTTP surface over real sockets: health, readiness (including with the database gone),
//! and the error format.

mod common;

use std::net::SocketAddr;

async fn serve(url: &str) -> SocketAddr {
    common::TestServer::start(url, 5).await.addr
}

/// A tiny HTTP/1.1 client: status and JSON body.
async fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn health_readiness_and_errors_on_sqlite() {
    let db = common::TestDb::sqlite();
    let addr = serve(&db.url).await;
    for path in ["/health", "/api/health"] {
        let (status, body) = get(addr, "GET", path).await;
        assert_eq!(status, 200);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }
    let (status, body) = get(addr, "GET", "/health/ready").await;
    assert_eq!((status, body["database"].as_str()), (200, Some("sqlite")));
    let (status, body) = get(addr, "GET", "/api/nowhere").await;
    assert_eq!((status, body["detail"].as_str()), (404, Some("Not Found")));
    let (status, body) = get(addr, "DELETE", "/health").await;
    assert_eq!((status, body["detail"].as_str()), (405, Some("Method Not Allowed")));
    db.drop_db().await;
}

#[tokio::test]
async fn readiness_fails_with_503_when_the_database_goes_away() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let addr = serve(&db.url).await;
    assert_eq!(get(addr, "GET", "/health/ready").await.0, 200);
    db.drop_db().await; // terminates the server's connections and removes the database
    let (status, body) = get(addr, "GET", "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("database unavailable"),
        "{body}"
    );
    assert_eq!(
        get(addr, "GET", "/health").await.0,
        200,
        "liveness does not depend on the database"
    );
}
