//! Just enough HTTP/1.1 for an echo server and a GET probe.

use crate::{identity_fields, json_obj, json_str};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A parsed request head.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub start: Vec<String>,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a start line and headers up to the blank line.
pub async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Head> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let start = line.split_whitespace().map(String::from).collect();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Head { start, headers })
}

/// Serves one request with a JSON description of it, then closes.
pub async fn serve_one(stream: TcpStream, peer: SocketAddr) {
    let mut reader = BufReader::new(stream);
    let Ok(head) = read_head(&mut reader).await else {
        return;
    };
    let len: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    let reply = echo_body(&head, peer, &body);
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.len(),
        reply
    );
    let _ = reader.get_mut().write_all(resp.as_bytes()).await;
}

fn echo_body(head: &Head, peer: SocketAddr, body: &[u8]) -> String {
    let field = |i: usize| {
        head.start
            .get(i)
            .map(|s| json_str(s))
            .unwrap_or_else(|| "null".into())
    };
    let headers: Vec<(&str, String)> = head
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), json_str(v)))
        .collect();
    let mut fields = vec![
        ("method", field(0)),
        ("path", field(1)),
        ("headers", json_obj(&headers)),
        ("peer", json_str(&crate::peer_str(peer))),
        ("body", json_str(&String::from_utf8_lossy(body))),
    ];
    fields.extend(identity_fields());
    json_obj(&fields)
}

/// Sends `GET path` and returns (status, body).
pub async fn get(stream: TcpStream, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut reader = BufReader::new(stream);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: nodenet-workload\r\nConnection: close\r\n\r\n"
    );
    reader.get_mut().write_all(req.as_bytes()).await?;
    let head = read_head(&mut reader).await?;
    let status = head
        .start
        .get(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP status line"))?;
    let mut body = String::new();
    let _ = reader.read_to_string(&mut body).await;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_head() {
        let raw = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Y: 1\r\n\r\nrest";
        let mut r = BufReader::new(&raw[..]);
        let head = read_head(&mut r).await.unwrap();
        assert_eq!(head.start, vec!["GET", "/x", "HTTP/1.1"]);
        assert_eq!(head.header("x-y"), Some("1"));
    }

    #[test]
    fn echo_is_json_with_request_details() {
        let head = Head {
            start: vec!["POST".into(), "/p".into()],
            headers: vec![("A".into(), "b\"".into())],
        };
        let out = echo_body(&head, "10.0.0.1:5".parse().unwrap(), b"hi");
        assert!(out.starts_with("{\"method\":\"POST\",\"path\":\"/p\",\"headers\":{\"A\":\"b\\\"\"},\"peer\":\"10.0.0.1:5\",\"body\":\"hi\""), "{out}");
    }
}
