//! IP addresses as the API sends them: parsed on ingest (17 bytes inline
//! instead of a string allocation), the text kept when it does not parse.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// One address field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Ip(IpAddr),
    /// Not an IP address (reported by the reader; `None` marks a headless
    /// Service's clusterIP).
    Text(Box<str>),
}

impl Address {
    pub fn parse(text: &str) -> Address {
        match text.parse() {
            Ok(ip) => Address::Ip(ip),
            Err(_) => Address::Text(text.into()),
        }
    }

    /// Whether this is the literal `text` (not an IP).
    pub fn is_text(&self, text: &str) -> bool {
        matches!(self, Address::Text(t) if &**t == text)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => ip.fmt(f),
            Address::Text(text) => f.write_str(text),
        }
    }
}

struct AddressVisitor;

impl Visitor<'_> for AddressVisitor {
    type Value = Address;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP address string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Address, E> {
        Ok(Address::parse(text))
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(AddressVisitor)
    }
}

/// An endpoint's addresses: nearly always exactly one, held inline; the
/// rare longer list (the API allows up to 100) in one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    One(Address),
    Many(Box<[Address]>),
}

impl Default for Addresses {
    fn default() -> Self {
        Addresses::Many(Box::default())
    }
}

impl Addresses {
    pub fn as_slice(&self) -> &[Address] {
        match self {
            Addresses::One(a) => std::slice::from_ref(a),
            Addresses::Many(list) => list,
        }
    }
}

struct AddressesVisitor;

impl<'de> Visitor<'de> for AddressesVisitor {
    type Value = Addresses;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of IP address strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Addresses, A::Error> {
        let Some(first) = seq.next_element::<Address>()? else {
            return Ok(Addresses::default());
        };
        let Some(second) = seq.next_element::<Address>()? else {
            return Ok(Addresses::One(first));
        };
        let mut list = vec![first, second];
        while let Some(more) = seq.next_element()? {
            list.push(more);
        }
        Ok(Addresses::Many(list.into_boxed_slice()))
    }

    /// `null` (a Go nil slice) is an empty list.
    fn visit_unit<E: de::Error>(self) -> Result<Addresses, E> {
        Ok(Addresses::default())
    }
}

impl<'de> Deserialize<'de> for Addresses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AddressesVisitor)
    }
}
