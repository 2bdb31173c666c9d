//! One exchange with one upstream server: UDP from a fresh socket (random
//! source port and ID against spoofing), TCP when the answer is truncated.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::wire::{EDNS_PAYLOAD, HEADER_LEN, flag};

/// Receive buffer for one UDP answer. We offer EDNS_PAYLOAD (1232) bytes,
/// so a conforming answer fits; a bigger datagram is cut and rejected as
/// malformed. Small because one is held per in-flight upstream query
/// (64 KiB each made a burst of forwards raise RSS by megabytes).
const UDP_ANSWER_MAX: usize = 4096;

/// An exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("upstream {0}: timed out")]
    Timeout(SocketAddr),
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: std::io::Error,
    },
}

/// Our query for `question` (lower-case question section bytes) with ID
/// `id`, recursion desired and an EDNS(0) OPT offering 1232 bytes.
pub fn build_query(id: u16, question: &[u8]) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + question.len() + 11);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&flag::RD.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(question);
    let p = EDNS_PAYLOAD.to_be_bytes();
    q.extend_from_slice(&[0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]);
    q
}

/// Sends `query` to `upstream` and returns the answer bytes, retrying over
/// TCP when the UDP answer has TC set.
pub async fn exchange(
    upstream: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ExchangeError> {
    let run = async {
        let answer = udp(upstream, query).await?;
        if u16::from_be_bytes([answer[2], answer[3]]) & flag::TC != 0 {
            return tcp(upstream, query).await;
        }
        Ok(answer)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ExchangeError::Timeout(upstream))?
        .map_err(|source| ExchangeError::Io { upstream, source })
}

async fn udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; UDP_ANSWER_MAX];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Ignore stray datagrams: wrong ID, not a response, too short.
        if n >= HEADER_LEN && buf[0..2] == query[0..2] && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    if len < HEADER_LEN || buf[0..2] != query[0..2] {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "TCP answer with another ID",
        ));
    }
    Ok(buf)
}
