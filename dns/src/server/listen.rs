//! Binding and serving the sockets.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::handle::{Context, Handled, Transport, forward_response, handle};
use crate::metrics::Origin;
use crate::wire::TCP_MAX;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses served over both UDP and TCP (port 0 picks one, the same
    /// for UDP and TCP where possible).
    pub listen: Vec<SocketAddr>,
    /// UDP sockets per address (SO_REUSEPORT when > 1): the kernel spreads
    /// datagrams over them, one receive loop each.
    pub udp_sockets: usize,
    /// A TCP connection idle this long is closed.
    pub tcp_idle: Duration,
    pub max_tcp_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Vec::new(),
            udp_sockets: 1,
            tcp_idle: Duration::from_secs(10),
            max_tcp_connections: 1024,
        }
    }
}

/// Binding a listener failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Running listeners; dropping it stops them.
pub struct Server {
    tasks: JoinSet<()>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
}

impl Server {
    /// Binds every address and starts serving from `ctx`.
    pub async fn bind(config: &ServerConfig, ctx: Arc<Context>) -> Result<Server, ServerError> {
        let mut server = Server {
            tasks: JoinSet::new(),
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for addr in &config.listen {
            server.bind_one(*addr, config, &ctx)?;
        }
        Ok(server)
    }

    fn bind_one(
        &mut self,
        addr: SocketAddr,
        config: &ServerConfig,
        ctx: &Arc<Context>,
    ) -> Result<(), ServerError> {
        let reuse = config.udp_sockets > 1;
        let first = udp_socket(addr, reuse)?;
        let local = first.local_addr().map_err(|source| ServerError::Bind {
            proto: "udp",
            addr,
            source,
        })?;
        self.udp.push(local);
        self.tasks.spawn(udp_loop(Arc::new(first), ctx.clone(), 0));
        for shard in 1..config.udp_sockets {
            let socket = udp_socket(local, reuse)?;
            self.tasks
                .spawn(udp_loop(Arc::new(socket), ctx.clone(), shard));
        }
        let listener = tcp_listener(local).or_else(|_| tcp_listener(addr))?;
        self.tcp
            .push(listener.local_addr().map_err(|source| ServerError::Bind {
                proto: "tcp",
                addr,
                source,
            })?);
        let limit = Arc::new(Semaphore::new(config.max_tcp_connections));
        let shard = config.udp_sockets;
        self.tasks.spawn(tcp_accept(
            listener,
            ctx.clone(),
            config.tcp_idle,
            limit,
            shard,
        ));
        Ok(())
    }

    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Serves until a listener task ends (they do not, short of a panic).
    pub async fn serve(mut self) {
        if let Some(Err(e)) = self.tasks.join_next().await {
            tracing::error!(error = %e, "DNS listener task ended");
        }
    }
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket, ServerError> {
    let err = |source| ServerError::Bind {
        proto: "udp",
        addr,
        source,
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    socket.set_reuse_port(reuse_port).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(socket.into()).map_err(err)
}

fn tcp_listener(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind {
        proto: "tcp",
        addr,
        source,
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// Drains the socket each time it becomes readable; local answers are
/// sent inline, forwarded misses get a task.
async fn udp_loop(socket: Arc<UdpSocket>, ctx: Arc<Context>, shard: usize) {
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    loop {
        if let Err(e) = socket.readable().await {
            tracing::warn!(error = %e, "DNS UDP socket failed");
            return;
        }
        loop {
            let (n, peer) = match socket.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here; keep going.
                Err(_) => continue,
            };
            let raw = &buf[..n];
            let origin = Origin::new(false, peer.ip(), shard);
            match handle(&ctx, raw, Transport::Udp, origin, &mut out) {
                Handled::Reply => {
                    let _ = socket.try_send_to(&out, peer);
                }
                Handled::Drop => {}
                Handled::Forward(p) => {
                    let (socket, ctx, raw) = (socket.clone(), ctx.clone(), raw.to_vec());
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        let limit = p.q.udp_limit();
                        forward_response(&ctx, &p, &raw, limit, origin, &mut out).await;
                        let _ = socket.send_to(&out, peer).await;
                    });
                }
            }
        }
    }
}

async fn tcp_accept(
    listener: TcpListener,
    ctx: Arc<Context>,
    idle: Duration,
    limit: Arc<Semaphore>,
    shard: usize,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue; // Over the connection limit: dropping closes it.
        };
        let ctx = ctx.clone();
        let origin = Origin::new(true, peer.ip(), shard);
        tokio::spawn(async move {
            let _ = tcp_connection(stream, &ctx, idle, origin).await;
            drop(permit);
        });
    }
}

/// Serves queries on one connection in order until it closes or idles.
async fn tcp_connection(
    mut stream: TcpStream,
    ctx: &Context,
    idle: Duration,
    origin: Origin,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; TCP_MAX];
    let mut out = Vec::with_capacity(4096);
    loop {
        let Ok(len) = tokio::time::timeout(idle, stream.read_u16()).await else {
            return Ok(());
        };
        let len = len? as usize;
        tokio::time::timeout(idle, stream.read_exact(&mut buf[..len]))
            .await
            .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))??;
        let raw = &buf[..len];
        match handle(ctx, raw, Transport::Tcp, origin, &mut out) {
            Handled::Reply => {}
            Handled::Drop => return Ok(()),
            Handled::Forward(p) => forward_response(ctx, &p, raw, TCP_MAX, origin, &mut out).await,
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
    }
}
