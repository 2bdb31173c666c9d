use super::genl::{Genl, GenlError};

/// The family exists exactly when the kernel has WireGuard (built in or
/// loaded, both show under /sys/module). On this project's machines it
/// does not, which is what sends `auto` to user space.
#[test]
fn the_wireguard_family_resolves_exactly_when_the_kernel_has_wireguard() {
    let has_module = std::path::Path::new("/sys/module/wireguard").exists();
    match Genl::open() {
        Ok(_) => assert!(has_module, "family resolved without /sys/module/wireguard"),
        Err(GenlError::NoFamily) => assert!(!has_module, "module present, family not found"),
        Err(other) => panic!("generic netlink failed: {other}"),
    }
}
