//! Idempotent, atomic file installation: the CNI plugin binary, the
//! conflist and subnet.env. Each write reads what is there first and writes
//! only a difference, through a temporary file renamed into place, so a
//! runtime never sees a torn file and a restart changes nothing.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}")]
pub struct InstallError {
    op: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Writes `content` to `path` with `mode` unless it already has exactly that
/// content; returns whether it wrote.
pub fn write_if_changed(path: &Path, content: &[u8], mode: u32) -> Result<bool, InstallError> {
    if same_content(path, content)? {
        return Ok(false);
    }
    write_atomic(path, content, mode)?;
    Ok(true)
}

/// Copies the running executable to `dest` (mode 0755) unless identical.
pub fn install_self(dest: &Path) -> Result<bool, InstallError> {
    let exe =
        std::env::current_exe().map_err(|e| err("locate", Path::new("current executable"), e))?;
    let bytes = std::fs::read(&exe).map_err(|e| err("read", &exe, e))?;
    write_if_changed(dest, &bytes, 0o755)
}

fn same_content(path: &Path, content: &[u8]) -> Result<bool, InstallError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() != content.len() as u64 => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err("inspect", path, e)),
    }
    let existing = std::fs::read(path).map_err(|e| err("read", path, e))?;
    Ok(existing == content)
}

fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| err("create directory", dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.nodenet-tmp.{}", std::process::id()));
    let result = write_then_rename(&tmp, path, content, mode);
    if result.is_err() {
        // Leave no half-written temporary behind.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| err("write", path, e))
}

fn write_then_rename(tmp: &Path, path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    // A stale temporary from a crashed run may have another mode; start over.
    let _ = std::fs::remove_file(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The open mode is filtered by the umask; the plugin must be 0755.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)
}

fn err(op: &'static str, path: &Path, source: std::io::Error) -> InstallError {
    InstallError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_then_skips_identical_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/10-nodenet.conflist");
        assert!(write_if_changed(&path, b"one", 0o644).expect("write"));
        assert!(!write_if_changed(&path, b"one", 0o644).expect("skip"));
        assert!(write_if_changed(&path, b"two", 0o644).expect("rewrite"));
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary left: {leftovers:?}");
    }

    #[test]
    fn installed_binary_is_executable_and_identical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("bin/nodenet");
        assert!(install_self(&dest).expect("install"));
        let mode = std::fs::metadata(&dest).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(
            std::fs::read(&dest).expect("dest"),
            std::fs::read(exe).expect("exe")
        );
        assert!(
            !install_self(&dest).expect("second install"),
            "identical copy rewritten"
        );
    }
}
