//! ipBlock peers: `cidr` minus its `except` entries, as disjoint prefixes.
//!
//! Computing the difference at plan time gives each peer its own exact
//! address set, so an except only ever narrows its own peer (kube-router
//! merges the excepts of a rule's peers, one peer can then cancel another).

use std::net::IpAddr;

use ipnet::IpNet;

/// Address family of a pod IP, CIDR or nft object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Both families, v4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// A validated ipBlock: excepts lie inside `cidr` and share its family.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Parses and validates; errors are (field suffix, reason).
    pub fn parse(cidr: &str, except: &[String]) -> Result<IpBlock, (String, String)> {
        let cidr = parse_net(cidr).map_err(|r| ("cidr".to_string(), r))?;
        let mut nets = Vec::new();
        for (i, raw) in except.iter().enumerate() {
            let field = format!("except[{i}]");
            let net = parse_net(raw).map_err(|r| (field.clone(), r))?;
            if !cidr.contains(&net) {
                let reason = format!("{net} is not inside cidr {cidr}");
                return Err((field, reason));
            }
            nets.push(net);
        }
        Ok(IpBlock { cidr, except: nets })
    }

    /// The family of the block.
    pub fn family(&self) -> Family {
        Family::of(&self.cidr.network())
    }

    /// `cidr` minus every except, as sorted disjoint prefixes.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let family = self.family();
        let mut ranges = vec![range_of(&self.cidr)];
        for ex in &self.except {
            let (lo, hi) = range_of(ex);
            ranges = ranges
                .into_iter()
                .flat_map(|r| subtract(r, (lo, hi)))
                .collect();
        }
        ranges
            .into_iter()
            .flat_map(|(lo, hi)| range_to_prefixes(lo, hi, family))
            .collect()
    }
}

/// Accepts host bits set (`10.0.0.1/8` means `10.0.0.0/8`), as the API does
/// for older objects; the network is what counts.
fn parse_net(raw: &str) -> Result<IpNet, String> {
    raw.trim()
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|e| format!("{raw:?} is not a CIDR: {e}"))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn range_of(net: &IpNet) -> (u128, u128) {
    (to_u128(net.network()), to_u128(net.broadcast()))
}

fn subtract(r: (u128, u128), ex: (u128, u128)) -> Vec<(u128, u128)> {
    let (lo, hi) = r;
    let (elo, ehi) = ex;
    if ehi < lo || elo > hi {
        return vec![r];
    }
    let mut out = Vec::new();
    if elo > lo {
        out.push((lo, elo - 1));
    }
    if ehi < hi {
        out.push((ehi + 1, hi));
    }
    out
}

/// Splits an inclusive range into the fewest aligned prefixes.
fn range_to_prefixes(mut lo: u128, hi: u128, family: Family) -> Vec<IpNet> {
    let bits = family.bits();
    let mut out = Vec::new();
    loop {
        // Largest block aligned at `lo` that does not pass `hi`.
        let mut size_log = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_log > 0 && block_end(lo, size_log).is_none_or(|end| end > hi) {
            size_log -= 1;
        }
        out.push(net_of(lo, bits - size_log, family));
        match block_end(lo, size_log) {
            Some(end) if end < hi => lo = end + 1,
            _ => return out,
        }
    }
}

/// Last address of the block of 2^size_log addresses starting at `lo`.
fn block_end(lo: u128, size_log: u32) -> Option<u128> {
    let span = if size_log >= 128 {
        u128::MAX
    } else {
        (1u128 << size_log) - 1
    };
    lo.checked_add(span)
}

fn net_of(addr: u128, prefix: u32, family: Family) -> IpNet {
    // The values fit by construction (addr is inside the family's space,
    // prefix <= bits); the fallbacks are unreachable but never panic.
    let ip = match family {
        Family::V4 => IpAddr::V4(u32::try_from(addr).unwrap_or(u32::MAX).into()),
        Family::V6 => IpAddr::V6(addr.into()),
    };
    IpNet::new(ip, u8::try_from(prefix).unwrap_or(0)).unwrap_or_else(|_| IpNet::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cidr: &str, except: &[&str]) -> IpBlock {
        let except: Vec<String> = except.iter().map(|s| s.to_string()).collect();
        IpBlock::parse(cidr, &except).expect("valid")
    }

    fn texts(nets: Vec<IpNet>) -> Vec<String> {
        nets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn no_except_is_the_cidr() {
        assert_eq!(texts(block("10.0.0.0/8", &[]).prefixes()), ["10.0.0.0/8"]);
        assert_eq!(texts(block("0.0.0.0/0", &[]).prefixes()), ["0.0.0.0/0"]);
        assert_eq!(texts(block("::/0", &[]).prefixes()), ["::/0"]);
    }

    #[test]
    fn except_splits_into_prefixes() {
        let p = texts(block("10.0.0.0/24", &["10.0.0.128/25"]).prefixes());
        assert_eq!(p, ["10.0.0.0/25"]);
        let p = texts(block("10.0.0.0/24", &["10.0.0.5/32"]).prefixes());
        assert_eq!(
            p,
            [
                "10.0.0.0/30",
                "10.0.0.4/32",
                "10.0.0.6/31",
                "10.0.0.8/29",
                "10.0.0.16/28",
                "10.0.0.32/27",
                "10.0.0.64/26",
                "10.0.0.128/25"
            ]
        );
    }

    #[test]
    fn whole_space_minus_a_host() {
        let p = block("0.0.0.0/0", &["255.255.255.255/32"]).prefixes();
        assert_eq!(p.len(), 32);
        let p = block("::/0", &["::/128"]).prefixes();
        assert_eq!(p.len(), 128);
    }

    #[test]
    fn host_bits_are_ignored() {
        assert_eq!(block("10.1.2.3/8", &[]).cidr.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_input_names_field() {
        let e = IpBlock::parse("10.0.0.0/33", &[]).expect_err("bad");
        assert_eq!(e.0, "cidr");
        let e = IpBlock::parse("10.0.0.0/8", &["11.0.0.0/16".into()]).expect_err("outside");
        assert_eq!(e.0, "except[0]");
        let e = IpBlock::parse("10.0.0.0/8", &["fd00::/64".into()]).expect_err("family");
        assert_eq!(e.0, "except[0]");
    }
}
