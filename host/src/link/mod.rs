//! rtnetlink helpers acting on the network namespace of the calling thread.
//!
//! A [`Netlink`] owns one rtnetlink connection; the socket belongs to the
//! namespace the thread was in when [`Netlink::connect`] ran, so open it inside
//! [`crate::netns`] work to act on another namespace.

mod addr;
mod create;
mod port;
mod query;
mod route;

pub mod mac;
pub mod neigh;
pub mod owned_route;
pub mod vxlan;

pub use addr::AddressFamilyFilter;
pub use create::VethSpec;
pub use query::LinkInfo;
pub use route::RouteSpec;

/// Errors from rtnetlink operations; each names the object it was about.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink connection: {0}")]
    Connect(#[source] std::io::Error),
    /// A named link does not exist.
    #[error("link {name} does not exist")]
    NotFound { name: String },
    /// A link exists with the wanted name but is of another kind.
    #[error("link {name} exists but is a {found}, not a {expected}")]
    WrongKind {
        name: String,
        expected: &'static str,
        found: String,
    },
    /// The kernel rejected a request.
    #[error("cannot {op} {subject}: {source}")]
    Request {
        op: &'static str,
        subject: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// A route could not be expressed as a netlink message.
    #[error("invalid route {subject}: {reason}")]
    InvalidRoute { subject: String, reason: String },
}

impl LinkError {
    fn request(op: &'static str, subject: impl Into<String>, source: rtnetlink::Error) -> Self {
        LinkError::Request {
            op,
            subject: subject.into(),
            source,
        }
    }

    /// The kernel errno behind a rejected request, if any (positive, e.g. `libc::EEXIST`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Request {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => Some(msg.raw_code().abs()),
            _ => None,
        }
    }
}

/// One rtnetlink connection in the current thread's network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a connection; must run inside a tokio runtime (the connection
    /// task is spawned on it).
    pub fn connect() -> Result<Netlink, LinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The raw rtnetlink handle, for requests this module does not wrap.
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

/// Deletes link `name` in the current namespace; returns whether it existed.
pub async fn delete_link(name: &str) -> Result<bool, LinkError> {
    Netlink::connect()?.delete_link(name).await
}

/// Whether link `name` exists in the current namespace.
pub async fn link_exists(name: &str) -> Result<bool, LinkError> {
    Netlink::connect()?.link_exists(name).await
}

#[cfg(test)]
mod tests {
    /// The daemon awaits these inside spawned tasks, so their futures must be Send.
    #[test]
    fn free_function_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        assert_send(super::delete_link("x"));
        assert_send(super::link_exists("x"));
    }
}
