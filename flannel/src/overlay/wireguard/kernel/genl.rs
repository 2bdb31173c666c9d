//! A generic-netlink socket speaking to the kernel's `wireguard` family:
//! the family id is resolved once, then requests are acknowledged and dumps
//! collected. Blocking, with a receive timeout: the kernel answers these in
//! microseconds, and the overlay reconciles from one task.

use std::cell::Cell;
use std::fmt::Debug;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_wireguard::WireguardMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

/// How long one answer may take before the request counts as failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures talking to the kernel over generic netlink.
#[derive(Debug, thiserror::Error)]
pub enum GenlError {
    /// The kernel has no `wireguard` generic-netlink family (no module).
    #[error("the kernel has no wireguard generic-netlink family (module not loaded or not built)")]
    NoFamily,
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: the kernel answered errno {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Kernel { op: &'static str, errno: i32 },
    #[error("{op}: cannot decode the kernel's answer: {reason}")]
    Decode { op: &'static str, reason: String },
}

/// An open socket bound to the `wireguard` family.
pub struct Genl {
    socket: Socket,
    family: u16,
    seq: Cell<u32>,
}

impl Genl {
    /// Opens a socket in the calling thread's network namespace and
    /// resolves the `wireguard` family.
    pub fn open() -> Result<Genl, GenlError> {
        let mut genl = Genl::connect()?;
        genl.family = genl.resolve_family()?;
        Ok(genl)
    }

    /// A socket not yet bound to a family.
    fn connect() -> Result<Genl, GenlError> {
        let io = |op| move |source| GenlError::Io { op, source };
        let mut socket =
            Socket::new(NETLINK_GENERIC).map_err(io("open a generic netlink socket"))?;
        socket
            .bind_auto()
            .map_err(io("bind the generic netlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connect the generic netlink socket"))?;
        let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
        setsockopt(&socket, ReceiveTimeout, &timeout).map_err(|e| GenlError::Io {
            op: "set the receive timeout",
            source: e.into(),
        })?;
        Ok(Genl {
            socket,
            family: 0,
            seq: Cell::new(0),
        })
    }

    fn resolve_family(&self) -> Result<u16, GenlError> {
        match self.resolve_family_named("wireguard") {
            Err(GenlError::Kernel { errno, .. }) if errno == libc::ENOENT => {
                Err(GenlError::NoFamily)
            }
            other => other,
        }
    }

    fn resolve_family_named(&self, name: &str) -> Result<u16, GenlError> {
        let request = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.into())],
        };
        let op = "resolve a generic netlink family";
        let message = GenlMessage::from_payload(request);
        let answers = self.exchange(message, NLM_F_REQUEST | NLM_F_ACK, op)?;
        answers
            .iter()
            .flat_map(|a| &a.payload.nlas)
            .find_map(|attr| match attr {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or(GenlError::Decode {
                op,
                reason: "no family id in the answer".into(),
            })
    }

    /// Sends a `WG_CMD_SET_DEVICE` and waits for its acknowledgement.
    pub fn set(&self, message: WireguardMessage, op: &'static str) -> Result<(), GenlError> {
        self.exchange(self.wrap(message), NLM_F_REQUEST | NLM_F_ACK, op)
            .map(drop)
    }

    /// Sends a `WG_CMD_GET_DEVICE` dump and returns every answer.
    pub fn dump(
        &self,
        message: WireguardMessage,
        op: &'static str,
    ) -> Result<Vec<WireguardMessage>, GenlError> {
        let answers = self.exchange(self.wrap(message), NLM_F_REQUEST | NLM_F_DUMP, op)?;
        Ok(answers.into_iter().map(|a| a.payload).collect())
    }

    fn wrap(&self, message: WireguardMessage) -> GenlMessage<WireguardMessage> {
        let mut genl = GenlMessage::from_payload(message);
        genl.set_resolved_family_id(self.family);
        genl
    }

    /// Sends one request and reads answers until its ack, its error or the
    /// end of its dump (every request but a dump asks for an ack).
    fn exchange<F>(
        &self,
        request: GenlMessage<F>,
        flags: u16,
        op: &'static str,
    ) -> Result<Vec<GenlMessage<F>>, GenlError>
    where
        F: Debug
            + netlink_packet_generic::GenlFamily
            + netlink_packet_core::Emitable
            + netlink_packet_core::ParseableParametrized<[u8], netlink_packet_generic::GenlHeader>,
        GenlMessage<F>: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut message = NetlinkMessage::from(request);
        message.header.flags = flags;
        message.header.sequence_number = seq;
        message.finalize();
        let mut buffer = vec![0; message.buffer_len()];
        message.serialize(&mut buffer);
        self.socket
            .send(&buffer, 0)
            .map_err(|source| GenlError::Io { op, source })?;
        self.collect(seq, op)
    }

    fn collect<F>(&self, seq: u32, op: &'static str) -> Result<Vec<GenlMessage<F>>, GenlError>
    where
        GenlMessage<F>: NetlinkDeserializable + Debug,
    {
        let mut answers = Vec::new();
        loop {
            let datagram = self.receive(op)?;
            let mut offset = 0;
            while offset < datagram.len() {
                let message = NetlinkMessage::<GenlMessage<F>>::deserialize(&datagram[offset..])
                    .map_err(|e| GenlError::Decode {
                        op,
                        reason: e.to_string(),
                    })?;
                let length = message.header.length as usize;
                offset += length.max(1).next_multiple_of(4);
                if message.header.sequence_number != seq {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(answers),
                            Some(code) => Err(GenlError::Kernel {
                                op,
                                errno: -code.get(),
                            }),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    _ => {}
                }
            }
        }
    }

    /// One whole datagram, however large (a dump part can exceed a page).
    fn receive(&self, op: &'static str) -> Result<Vec<u8>, GenlError> {
        let io = |source| GenlError::Io { op, source };
        let mut peek: Vec<u8> = Vec::new();
        let length = self
            .socket
            .recv(&mut peek, libc::MSG_PEEK | libc::MSG_TRUNC)
            .map_err(io)?;
        let mut buffer = Vec::with_capacity(length);
        self.socket.recv(&mut buffer, 0).map_err(io)?;
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dump path (multi-part answers across datagrams, ended by
    /// NLMSG_DONE) against a family every kernel has: the controller's list
    /// of families, which holds itself.
    #[test]
    fn a_dump_collects_every_part_until_done() {
        let genl = Genl::connect().expect("generic netlink socket");
        let request = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![],
        };
        let families = genl
            .exchange(
                GenlMessage::from_payload(request),
                NLM_F_REQUEST | NLM_F_DUMP,
                "list families",
            )
            .expect("dump");
        let names: Vec<&str> = families
            .iter()
            .flat_map(|f| &f.payload.nlas)
            .filter_map(|attr| match attr {
                GenlCtrlAttrs::FamilyName(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert!(names.contains(&"nlctrl"), "{names:?}");
        assert!(names.len() > 1, "{names:?}");
        // The socket stays in step: a request after the dump is answered.
        let error = genl
            .resolve_family_named("no-such-family")
            .expect_err("absent");
        assert!(
            matches!(error, GenlError::Kernel { errno, .. } if errno == libc::ENOENT),
            "{error}"
        );
    }
}
