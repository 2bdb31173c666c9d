//! Where a lab keeps its files: everything under one directory, so `down`
//! removes it with one `remove_dir_all`.

use std::path::{Path, PathBuf};

/// Parent of every lab directory.
pub const LAB_ROOT: &str = "/run/nodenet-lab";

/// Search path the lab gives pods and exec'd commands (lab bin dir first).
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The file layout of one lab.
#[derive(Debug, Clone)]
pub struct LabDirs {
    root: PathBuf,
}

/// A node's directories, passed to nodenet as flags.
#[derive(Debug, Clone)]
pub struct NodeDirs {
    pub root: PathBuf,
    pub data: PathBuf,
    pub run: PathBuf,
    pub cni_conf: PathBuf,
    pub cni_bin: PathBuf,
    pub log: PathBuf,
}

impl LabDirs {
    pub fn for_prefix(prefix: &str) -> LabDirs {
        LabDirs {
            root: Path::new(LAB_ROOT).join(prefix),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Kubeconfig for the root namespace (127.0.0.1).
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    /// Kubeconfig nodes use (underlay address).
    pub fn underlay_kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig-underlay")
    }
    /// Binaries pods find by name.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    /// Processes the lab started: `pid starttime role` per line.
    pub fn pids(&self) -> PathBuf {
        self.root.join("pids")
    }
    /// Facts about the running lab for the CLI (JSON).
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// Log of the background `serve` process (CLI labs); beside the lab
    /// directory so that a failed start-up, which removes the directory,
    /// still leaves the reason readable.
    pub fn serve_log(&self) -> PathBuf {
        self.root.with_extension("log")
    }
    pub fn node(&self, node: &str) -> NodeDirs {
        let root = self.root.join("nodes").join(node);
        NodeDirs {
            data: root.join("data"),
            run: root.join("run"),
            cni_conf: root.join("cni-conf"),
            cni_bin: root.join("cni-bin"),
            log: root.join("nodenet.log"),
            root,
        }
    }
    /// A pod's directory (resolv.conf, container logs), keyed by UID.
    pub fn pod(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }
    /// PATH for pods and exec'd commands.
    pub fn search_path(&self) -> String {
        format!("{}:{SYSTEM_PATH}", self.bin().display())
    }
}

impl NodeDirs {
    pub fn create(&self) -> std::io::Result<()> {
        for d in [&self.data, &self.run, &self.cni_conf, &self.cni_bin] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// Finds `name` in the lab bin dir, then in PATH.
pub fn find_program(dirs: &LabDirs, name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.exists().then_some(p);
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| SYSTEM_PATH.to_string());
    std::iter::once(dirs.bin())
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
