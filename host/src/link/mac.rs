//! Ethernet (link-layer) addresses.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address; displayed as lower-case `aa:bb:cc:dd:ee:ff`,
/// the form flannel writes into its `VtepMAC` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// A string that is not six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':'")]
pub struct InvalidMac(pub String);

impl MacAddr {
    /// A random locally administered unicast address (first octet: bit 1 set,
    /// bit 0 clear), as flannel generates for a VTEP. `random` supplies the
    /// six bytes so callers choose the entropy source.
    pub fn local_unicast(random: [u8; 6]) -> MacAddr {
        let mut bytes = random;
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        MacAddr(bytes)
    }

    /// From raw link-layer bytes (netlink attributes); `None` unless 6 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }

    /// Whether this is a unicast, locally administered address.
    pub fn is_local_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0 && self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = InvalidMac;

    fn from_str(s: &str) -> Result<MacAddr, InvalidMac> {
        let invalid = || InvalidMac(s.to_string());
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(MacAddr(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_lower_case() {
        let mac: MacAddr = "AA:bb:0c:dd:ee:0F".parse().expect("valid");
        assert_eq!(mac.to_string(), "aa:bb:0c:dd:ee:0f");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa-bb-cc-dd-ee-ff",
            "a:bb:cc:dd:ee:fff",
            "zz:bb:cc:dd:ee:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_addresses_are_local_unicast() {
        assert_eq!(MacAddr::local_unicast([0xff; 6]).0[0], 0xfe);
        assert_eq!(MacAddr::local_unicast([0x00; 6]).0[0], 0x02);
        assert!(MacAddr::local_unicast([0x13, 1, 2, 3, 4, 5]).is_local_unicast());
    }
}
