//! Things cleanup can remove, and how each kind is removed.

use std::fmt;
use std::path::PathBuf;

use crate::iptables;
use crate::run::Cause;

/// One removable object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A network interface in the current network namespace.
    Link(String),
    /// An nftables table.
    NftTable { family: String, name: String },
    /// A regular file (or symlink).
    File(PathBuf),
    /// A directory, removed with its contents.
    Dir(PathBuf),
    /// A rule of an iptables front-end, deleted by its specification.
    IptablesRule(iptables::Rule),
    /// A user chain of an iptables front-end, flushed and deleted.
    IptablesChain(iptables::Chain),
    /// An ipset, destroyed by name.
    Ipset(String),
    /// An object removed by its step's own teardown (see
    /// [`crate::Step::remove_all`]), as that teardown describes it.
    Described(String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Link(name) => write!(f, "link {name}"),
            Item::NftTable { family, name } => write!(f, "nft table {family} {name}"),
            Item::File(path) => write!(f, "file {}", path.display()),
            Item::Dir(path) => write!(f, "dir {}", path.display()),
            Item::IptablesRule(rule) => rule.fmt(f),
            Item::IptablesChain(chain) => chain.fmt(f),
            Item::Ipset(name) => write!(f, "ipset {name}"),
            Item::Described(text) => f.write_str(text),
        }
    }
}

impl Item {
    /// Removes the item; Ok(false) if it was already gone (someone else
    /// removed it between finding and removing, which is fine).
    pub(crate) async fn remove(&self) -> Result<bool, Cause> {
        match self {
            Item::Link(name) => Ok(host::link::delete_link(name).await?),
            Item::NftTable { family, name } => Ok(host::nft::delete_table(family, name)?),
            Item::File(path) => gone_is_fine(std::fs::remove_file(path)),
            Item::Dir(path) => gone_is_fine(std::fs::remove_dir_all(path)),
            Item::IptablesRule(rule) => rule.delete(),
            Item::IptablesChain(chain) => chain.delete(),
            Item::Ipset(name) => Ok(crate::ipset::destroy(name)?),
            Item::Described(text) => Err(Cause::NotIndividually(text.clone())),
        }
    }
}

fn gone_is_fine(result: std::io::Result<()>) -> Result<bool, Cause> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Cause::Io(e)),
    }
}
