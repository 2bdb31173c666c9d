//! Network namespaces the lab creates (`ip netns add`, so they appear under
//! /run/netns and work with `ip netns exec`), and the pre-exec recipe that
//! puts a child process into one.
//!
//! Nothing here touches the root network namespace: links and addresses are
//! only ever changed through `ip -n <lab netns>`.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Where `ip netns add` mounts namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Failures of namespace plumbing.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// An `ip` command exited non-zero.
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetnsError {
    let what = what.into();
    move |source| NetnsError::Io { what, source }
}

/// Path of the bind mount that names a namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs `ip <args>` and fails with its stderr.
pub async fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io_err("cannot run ip"))?;
    ip_result(args, &out)
}

/// Blocking twin of [`ip`] for Drop paths.
pub fn ip_sync(args: &[&str]) -> Result<(), NetnsError> {
    let out = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("cannot run ip"))?;
    ip_result(args, &out)
}

fn ip_result(args: &[&str], out: &std::process::Output) -> Result<(), NetnsError> {
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Ip {
        args: args.join(" "),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Creates a named network namespace with `lo` up.
pub async fn add(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "add", name]).await?;
    ip(&["-n", name, "link", "set", "lo", "up"]).await
}

/// Removes a named namespace; `Ok(false)` when it did not exist.
pub fn del_sync(name: &str) -> Result<bool, NetnsError> {
    if !path(name).exists() {
        return Ok(false);
    }
    ip_sync(&["netns", "del", name]).map(|()| true)
}

/// Every namespace under /run/netns whose name starts with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Runs `f` on a fresh OS thread that first joins the namespace at `ns`.
/// Sockets created by `f` stay in that namespace for their whole life, so
/// this is how the lab listens on and connects from inside the lab network.
pub fn run_in<T, F>(ns: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let file = File::open(ns).map_err(io_err(format!("open {}", ns.display())))?;
    let what = format!("inside {}", ns.display());
    let handle = std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        f()
    });
    match handle.join() {
        Ok(r) => r.map_err(io_err(what)),
        Err(_) => Err(NetnsError::Io {
            what,
            source: std::io::Error::other("thread panicked"),
        }),
    }
}

/// Writes sysctl `key` (a path under /proc/sys, e.g.
/// `net/ipv6/conf/all/accept_dad`) inside the named lab namespace: the
/// `net` tree under /proc/sys belongs to the network namespace of the
/// thread that opens it, so a thread that joined `name` writes there only.
pub fn sysctl(name: &str, key: &str, value: &str) -> Result<(), NetnsError> {
    let file = Path::new("/proc/sys").join(key);
    let value = value.to_string();
    run_in(&path(name), move || std::fs::write(&file, value))
}

/// How a child process enters the lab: a network namespace, a private mount
/// namespace (so bind mounts and a namespace-local /sys stay private), bind
/// mounts such as a pod's resolv.conf, and optionally its own UTS hostname.
#[derive(Debug, Clone, Default)]
pub struct Enter {
    /// Network namespace to join (a /run/netns path).
    pub netns: Option<PathBuf>,
    /// `(source, target)` bind mounts made in the private mount namespace.
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Hostname in a private UTS namespace.
    pub hostname: Option<String>,
    /// Start a new process group (so the whole group can be signalled).
    pub new_group: bool,
}

struct Prepared {
    netns: Option<File>,
    binds: Vec<(CString, CString)>,
    hostname: Option<Vec<u8>>,
    new_group: bool,
}

fn cstr(p: &Path) -> Result<CString, NetnsError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| NetnsError::Io {
        what: format!("path {} contains NUL", p.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

impl Enter {
    /// Enters the namespace at `ns` with a private /sys.
    pub fn netns(ns: PathBuf) -> Self {
        Enter {
            netns: Some(ns),
            ..Default::default()
        }
    }

    fn prepare(&self) -> Result<Prepared, NetnsError> {
        let netns = match &self.netns {
            Some(p) => Some(File::open(p).map_err(io_err(format!("open {}", p.display())))?),
            None => None,
        };
        let binds = self
            .binds
            .iter()
            .map(|(s, t)| Ok((cstr(s)?, cstr(t)?)))
            .collect::<Result<_, NetnsError>>()?;
        let hostname = self.hostname.as_ref().map(|h| h.as_bytes().to_vec());
        Ok(Prepared {
            netns,
            binds,
            hostname,
            new_group: self.new_group,
        })
    }

    /// Installs the recipe on `cmd` as a pre-exec hook.
    pub fn apply(&self, cmd: &mut tokio::process::Command) -> Result<(), NetnsError> {
        let prepared = self.prepare()?;
        // SAFETY: the hook only makes async-signal-safe system calls on
        // memory prepared before fork (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || prepared.enter());
        }
        Ok(())
    }

    /// Same for a blocking std command.
    pub fn apply_std(&self, cmd: &mut std::process::Command) -> Result<(), NetnsError> {
        use std::os::unix::process::CommandExt;
        let prepared = self.prepare()?;
        // SAFETY: as in `apply`.
        unsafe {
            cmd.pre_exec(move || prepared.enter());
        }
        Ok(())
    }
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Prepared {
    /// Runs in the forked child: async-signal-safe calls only.
    fn enter(&self) -> std::io::Result<()> {
        // SAFETY: raw system calls on valid fds and NUL-terminated strings.
        unsafe {
            if self.new_group {
                check(libc::setpgid(0, 0))?;
            }
            if let Some(ns) = &self.netns {
                check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET))?;
                self.private_mounts()?;
            }
            if let Some(h) = &self.hostname {
                check(libc::unshare(libc::CLONE_NEWUTS))?;
                check(libc::sethostname(h.as_ptr().cast(), h.len()))?;
            }
        }
        Ok(())
    }

    /// New mount namespace that does not propagate back, a sysfs of the
    /// joined network namespace (as `ip netns exec` does), then bind mounts.
    unsafe fn private_mounts(&self) -> std::io::Result<()> {
        let none = c"none".as_ptr();
        // SAFETY: see `enter`.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                none,
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))?;
            if libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH) == 0 {
                check(libc::mount(
                    c"sysfs".as_ptr(),
                    c"/sys".as_ptr(),
                    c"sysfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ))?;
            }
            for (src, dst) in &self.binds {
                check(libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
        }
        Ok(())
    }
}

/// Inode of a namespace file, used to recognise processes inside a lab
/// namespace.
pub fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}
