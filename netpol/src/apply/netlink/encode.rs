//! Encoding nf_tables set-element messages and their batch envelope.
//!
//! Wire facts (linux/netfilter/nfnetlink.h, nf_tables.h): a transaction is
//! `NFNL_MSG_BATCH_BEGIN`, the messages, `NFNL_MSG_BATCH_END`; the kernel
//! applies the messages in between as one transaction or not at all. Every
//! message is an nlmsghdr, an nfgenmsg and attributes (native-endian
//! type/length headers, payload padded to 4 bytes). Set element keys are
//! the raw bytes the set's type stores, network byte order; in a
//! concatenation every field is padded to 4 bytes.

use std::net::IpAddr;

use super::NetlinkError;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const AF_UNSPEC: u8 = 0;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// NFT_JUMP (-3) as the kernel's big-endian u32.
const NFT_JUMP: i32 = -3;

/// One element: its key bytes and, in a verdict map, the chain to jump to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    pub jump: Option<String>,
}

/// Builds one batch; `messages` counts those that will be acknowledged.
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    pub messages: usize,
}

impl Batch {
    pub fn new(seq: u32) -> Batch {
        let mut batch = Batch {
            buf: Vec::new(),
            seq,
            messages: 0,
        };
        batch.envelope(NFNL_MSG_BATCH_BEGIN);
        batch
    }

    /// Appends one add (`add`) or delete of `elements` in `table`/`set`.
    pub fn elements(&mut self, table: &str, set: &str, add: bool, elements: &[Element]) {
        let (kind, flags) = match add {
            true => (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
            false => (NFT_MSG_DELSETELEM, 0),
        };
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        let start = self.header(kind, NLM_F_REQUEST | NLM_F_ACK | flags, NFPROTO_INET, 0);
        attr(&mut self.buf, NFTA_SET_ELEM_LIST_TABLE, &c_string(table));
        attr(&mut self.buf, NFTA_SET_ELEM_LIST_SET, &c_string(set));
        let list = nest_start(&mut self.buf, NFTA_SET_ELEM_LIST_ELEMENTS);
        for element in elements {
            let item = nest_start(&mut self.buf, NFTA_LIST_ELEM);
            let key = nest_start(&mut self.buf, NFTA_SET_ELEM_KEY);
            attr(&mut self.buf, NFTA_DATA_VALUE, &element.key);
            nest_end(&mut self.buf, key);
            if let Some(chain) = &element.jump {
                let data = nest_start(&mut self.buf, NFTA_SET_ELEM_DATA);
                let verdict = nest_start(&mut self.buf, NFTA_DATA_VERDICT);
                attr(&mut self.buf, NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
                attr(&mut self.buf, NFTA_VERDICT_CHAIN, &c_string(chain));
                nest_end(&mut self.buf, verdict);
                nest_end(&mut self.buf, data);
            }
            nest_end(&mut self.buf, item);
        }
        nest_end(&mut self.buf, list);
        self.finish_message(start);
        self.messages += 1;
    }

    /// Closes the batch; returns the bytes to send.
    pub fn finish(mut self) -> Vec<u8> {
        self.envelope(NFNL_MSG_BATCH_END);
        self.buf
    }

    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    fn envelope(&mut self, kind: u16) {
        let res_id = NFNL_SUBSYS_NFTABLES;
        let start = self.header(kind, NLM_F_REQUEST, AF_UNSPEC, res_id);
        self.finish_message(start);
    }

    /// nlmsghdr (length patched later) + nfgenmsg; returns the start.
    fn header(&mut self, kind: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        start
    }

    fn finish_message(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    pad(buf);
}

fn nest_start(buf: &mut Vec<u8>, kind: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

fn nest_end(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn c_string(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

/// The key bytes of an element written as the planner writes it, for a
/// set of type `key_type`: an address, or `address . proto . port`.
pub fn element_key(key_type: &str, text: &str) -> Result<Vec<u8>, NetlinkError> {
    let bad = |why: &str| NetlinkError::Element {
        element: text.to_string(),
        key_type: key_type.to_string(),
        reason: why.to_string(),
    };
    let types: Vec<&str> = key_type.split(" . ").collect();
    let fields: Vec<&str> = text.split(" . ").collect();
    if types.len() != fields.len() {
        return Err(bad("field count differs from the set type"));
    }
    let mut out = Vec::new();
    for (ty, field) in types.iter().zip(&fields) {
        let bytes = match *ty {
            "ipv4_addr" | "ipv6_addr" => {
                address(ty, field).ok_or_else(|| bad("not an address of the set's family"))?
            }
            "inet_proto" => vec![protocol(field).ok_or_else(|| bad("unknown protocol"))?],
            "inet_service" => field
                .parse::<u16>()
                .map_err(|_| bad("not a port"))?
                .to_be_bytes()
                .to_vec(),
            _ => return Err(bad("type not supported by the element encoder")),
        };
        let single = types.len() == 1;
        out.extend_from_slice(&bytes);
        // Concatenation fields occupy whole 32-bit registers.
        if !single {
            pad(&mut out);
        }
    }
    Ok(out)
}

fn address(ty: &str, text: &str) -> Option<Vec<u8>> {
    match (ty, text.parse::<IpAddr>().ok()?) {
        ("ipv4_addr", IpAddr::V4(a)) => Some(a.octets().to_vec()),
        ("ipv6_addr", IpAddr::V6(a)) => Some(a.octets().to_vec()),
        _ => None,
    }
}

fn protocol(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_network_order_and_concatenations_are_register_padded() {
        assert_eq!(
            element_key("ipv4_addr", "10.42.0.5").expect("v4"),
            [10, 42, 0, 5]
        );
        let v6 = element_key("ipv6_addr", "fd00::1").expect("v6");
        assert_eq!((v6.len(), v6[0], v6[15]), (16, 0xfd, 1));
        let tuple = element_key(
            "ipv4_addr . inet_proto . inet_service",
            "10.0.0.1 . tcp . 8080",
        )
        .expect("tuple");
        assert_eq!(tuple, [10, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert!(element_key("ipv4_addr", "fd00::1").is_err());
        assert!(
            element_key(
                "ipv4_addr . inet_proto . inet_service",
                "10.0.0.1 . gre . 1"
            )
            .is_err()
        );
        assert!(element_key("ipv4_addr", "10.0.0.1 . tcp . 80").is_err());
    }

    /// Walks nlmsghdr lengths: every message is whole and 4-byte aligned,
    /// begin and end frame the element messages, sequence numbers climb.
    #[test]
    fn batch_is_framed_and_lengths_add_up() {
        let mut batch = Batch::new(100);
        let element = Element {
            key: vec![10, 42, 0, 5],
            jump: Some("cls-x".into()),
        };
        batch.elements("inet-t", "m", true, std::slice::from_ref(&element));
        batch.elements(
            "inet-t",
            "s",
            false,
            &[Element {
                key: vec![1, 2, 3, 4],
                jump: None,
            }],
        );
        assert_eq!(batch.messages, 2);
        let bytes = batch.finish();
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("len")) as usize;
            let kind = u16::from_ne_bytes(bytes[at + 4..at + 6].try_into().expect("type"));
            let seq = u32::from_ne_bytes(bytes[at + 8..at + 12].try_into().expect("seq"));
            assert_eq!(len % 4, 0);
            kinds.push((kind, seq));
            at += len;
        }
        assert_eq!(at, bytes.len());
        let new = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
        let del = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELSETELEM;
        assert_eq!(
            kinds,
            [
                (NFNL_MSG_BATCH_BEGIN, 100),
                (new, 101),
                (del, 102),
                (NFNL_MSG_BATCH_END, 103)
            ]
        );
    }
}
