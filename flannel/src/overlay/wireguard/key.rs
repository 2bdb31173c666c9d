//! WireGuard keys: the 32-byte Curve25519 keys in the two text forms that
//! matter (base64 in annotations and key files, hex in the UAPI), and our
//! private key, kept under the data dir and reused across restarts so peers
//! need no update after a daemon restart.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::WireguardError;

/// Where the private key lives, relative to --data-dir.
pub const PRIVATE_KEY_FILE: &str = "flannel/wg-private-key";

/// A public key (or the raw bytes of any WireGuard key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WgKey(pub [u8; 32]);

impl WgKey {
    /// Standard base64 with padding, as `wg` and flannel print keys.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_base64(text: &str) -> Result<WgKey, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| format!("not base64 ({e})"))?;
        Self::from_slice(&bytes)
    }

    /// Lower-case hex, the UAPI's key form.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Result<WgKey, String> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return Err(format!("{text:?} is not 64 hex digits"));
        }
        let bytes: Result<Vec<u8>, _> = (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect();
        Self::from_slice(&bytes.map_err(|e| format!("{text:?} is not hex ({e})"))?)
    }

    fn from_slice(bytes: &[u8]) -> Result<WgKey, String> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("{} bytes, a key has 32", bytes.len()))?;
        Ok(WgKey(array))
    }
}

impl fmt::Display for WgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for WgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgKey({})", self.to_base64())
    }
}

/// Our private key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(WgKey);

impl PrivateKey {
    /// Clamps as `wg genkey` does, so the stored key is canonical.
    pub fn from_bytes(mut bytes: [u8; 32]) -> PrivateKey {
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        PrivateKey(WgKey(bytes))
    }

    pub fn public_key(&self) -> WgKey {
        let secret = boringtun::x25519::StaticSecret::from(self.0.0);
        WgKey(boringtun::x25519::PublicKey::from(&secret).to_bytes())
    }

    /// The raw key, for the kernel device's `WGDEVICE_A_PRIVATE_KEY` only.
    pub(super) fn to_bytes(&self) -> [u8; 32] {
        self.0.0
    }

    /// Hex, for the UAPI `private_key=` line only.
    pub(super) fn to_hex(&self) -> String {
        self.0.to_hex()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public_key())
    }
}

/// The key file under `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(PRIVATE_KEY_FILE)
}

/// Reads the key file (base64, as flannel writes it), or creates it with a
/// fresh key, mode 0600. A file with wider permissions is narrowed.
pub fn load_or_create(file: &Path) -> Result<(PrivateKey, bool), WireguardError> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let key = WgKey::from_base64(&text).map_err(|reason| WireguardError::KeyInvalid {
                path: file.to_path_buf(),
                reason,
            })?;
            narrow_mode(file)?;
            Ok((PrivateKey::from_bytes(key.0), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::from_bytes(random_bytes(file)?);
            write(file, &key)?;
            Ok((key, true))
        }
        Err(source) => Err(io_err("read", file, source)),
    }
}

fn narrow_mode(file: &Path) -> Result<(), WireguardError> {
    let meta = std::fs::metadata(file).map_err(|e| io_err("stat", file, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("chmod 0600", file, e))?;
    }
    Ok(())
}

/// Atomic write (temp file created 0600, then rename): a crash never leaves
/// half a key, and the key is never readable by others, even briefly.
fn write(file: &Path, key: &PrivateKey) -> Result<(), WireguardError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create the directory of", file, e))?;
    }
    let tmp = file.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("create", &tmp, e))?;
    out.write_all(key.0.to_base64().as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| io_err("write", &tmp, e))?;
    std::fs::rename(&tmp, file).map_err(|e| io_err("rename into", file, e))
}

fn random_bytes(file: &Path) -> Result<[u8; 32], WireguardError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| io_err("generate (reading /dev/urandom)", file, e))?;
    Ok(bytes)
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> WireguardError {
    WireguardError::KeyIo {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_0600_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path());
        assert!(file.ends_with("flannel/wg-private-key"));
        let (first, created) = load_or_create(&file).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(text.len(), 44, "base64 of 32 bytes, no newline: {text:?}");
        let (second, created) = load_or_create(&file).expect("reuse");
        assert!(!created);
        assert_eq!(second.public_key(), first.public_key());
    }

    #[test]
    fn wide_mode_is_narrowed_and_garbage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path());
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        // A key from `wg genkey`, world-readable.
        std::fs::write(&file, "YEocP0e2o1WT5GlvBvQzVF7h7rA0uZtLAmj1/3v0nG4=\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        load_or_create(&file).expect("valid key");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&file, "not a key").expect("write");
        let err = load_or_create(&file).expect_err("garbage").to_string();
        assert!(err.contains("wg-private-key"), "{err}");
    }

    #[test]
    fn public_key_matches_the_rfc7748_vector() {
        // RFC 7748 §6.1: Alice's private and public key.
        let private =
            WgKey::from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .expect("hex");
        let public = PrivateKey::from_bytes(private.0).public_key();
        assert_eq!(
            public.to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        assert_eq!(WgKey::from_base64(&public.to_base64()), Ok(public));
        assert!(WgKey::from_base64("AAAA").is_err());
        assert!(WgKey::from_hex("zz").is_err());
    }
}
