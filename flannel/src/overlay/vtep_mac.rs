//! The VXLAN VTEP MAC, stable across restarts: peers hold it in their
//! neighbour and FDB tables, so a new MAC would black-hole traffic until
//! every peer has seen the new annotation (flannel#1795 and friends).

use std::io::Read;
use std::path::{Path, PathBuf};

use host::link::mac::MacAddr;
use host::names;

use super::OverlayError;

/// Where the MAC came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacSource {
    /// `<data-dir>/flannel/vtep-mac[-v6]` from an earlier run.
    File,
    /// Our own `backend-data` annotation (data dir wiped, or taking over
    /// from K3s's flannel): keeping it means peers need no update.
    Annotation,
    /// Fresh random locally administered address.
    Generated,
}

/// The file of the IPv4 (`v6 = false`) or IPv6 device's MAC.
pub fn path(data_dir: &Path, v6: bool) -> PathBuf {
    let file = data_dir.join(names::VTEP_MAC_FILE);
    if v6 {
        file.with_file_name("vtep-mac-v6")
    } else {
        file
    }
}

/// The MAC to use: the file's if present (a different annotated MAC is
/// logged and will be rewritten), else the annotated one, else a new one;
/// the choice is written to the file before it is used.
pub fn load_or_create(
    file: &Path,
    annotated: Option<MacAddr>,
) -> Result<(MacAddr, MacSource), OverlayError> {
    if let Some(saved) = read(file)? {
        if let Some(other) = annotated.filter(|a| *a != saved) {
            tracing::warn!(component = "flannel", file = %file.display(), %saved, annotated = %other,
                "VTEP MAC in the data dir differs from our backend-data annotation; keeping the saved one");
        }
        return Ok((saved, MacSource::File));
    }
    let (mac, source) = match annotated.filter(MacAddr::is_local_unicast) {
        Some(mac) => (mac, MacSource::Annotation),
        None => (
            MacAddr::local_unicast(random_bytes(file)?),
            MacSource::Generated,
        ),
    };
    write(file, mac)?;
    Ok((mac, source))
}

fn read(file: &Path) -> Result<Option<MacAddr>, OverlayError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_err("read", file, source)),
    };
    let mac = text
        .trim()
        .parse::<MacAddr>()
        .ok()
        .filter(MacAddr::is_local_unicast);
    mac.map(Some).ok_or_else(|| OverlayError::VtepMacInvalid {
        path: file.to_path_buf(),
        content: text.trim().to_string(),
    })
}

/// Atomic write (temp file + rename) so a crash never leaves half a MAC.
fn write(file: &Path, mac: MacAddr) -> Result<(), OverlayError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create the directory of", file, e))?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{mac}\n")).map_err(|e| io_err("write", &tmp, e))?;
    std::fs::rename(&tmp, file).map_err(|e| io_err("rename into", file, e))
}

fn random_bytes(file: &Path) -> Result<[u8; 6], OverlayError> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| io_err("generate (reading /dev/urandom)", file, e))?;
    Ok(bytes)
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> OverlayError {
    OverlayError::VtepMacIo {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().expect("test literal")
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), false);
        let (first, source) = load_or_create(&file, None).expect("create");
        assert_eq!(source, MacSource::Generated);
        assert!(first.is_local_unicast());
        let (second, source) = load_or_create(&file, None).expect("reuse");
        assert_eq!((second, source), (first, MacSource::File));
        assert_eq!(
            std::fs::read_to_string(&file).expect("file"),
            format!("{first}\n")
        );
    }

    #[test]
    fn annotation_is_adopted_when_no_file_and_file_wins_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), true);
        assert!(file.ends_with("flannel/vtep-mac-v6"));
        let annotated = mac("0e:aa:bb:cc:dd:ee");
        assert_eq!(
            load_or_create(&file, Some(annotated)).expect("adopt"),
            (annotated, MacSource::Annotation)
        );
        let other = mac("0e:11:11:11:11:11");
        assert_eq!(
            load_or_create(&file, Some(other)).expect("file"),
            (annotated, MacSource::File)
        );
    }

    #[test]
    fn garbage_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), false);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, "ff:ff:ff:ff:ff:ff\n").expect("write");
        let err = load_or_create(&file, None)
            .expect_err("multicast MAC refused")
            .to_string();
        assert!(err.contains("vtep-mac") && err.contains("ff:ff"), "{err}");
    }
}
