//! Helpers shared by the agent's integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// A base port with `n` free ports above it (checked by binding each).
pub fn free_range(n: u16) -> u16 {
    for attempt in 0..200u32 {
        let base = 30_000 + ((std::process::id() * 7 + attempt * 389) % 30_000) as u16;
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range");
}

/// A blocking HTTP/1.1 request; the status and the body as text.
pub fn http_text(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    (
        status,
        text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned()),
    )
}

/// A blocking HTTP/1.1 request with a JSON answer.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = http_text(addr, method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}
