//! Running code inside another network namespace.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling *thread* only, so
//! every entry point here spawns a dedicated OS thread, enters the namespace
//! there, and (for async work) builds a current-thread tokio runtime on that
//! thread. Netlink sockets and `nft`/`ip` child processes created on that thread
//! belong to the target namespace. Tokio worker threads are never moved.

mod test_netns;

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};

pub use test_netns::TestNetns;

/// Errors entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened (no such netns, or no permission).
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `setns` refused the file (not a network namespace, or not privileged).
    #[error("cannot enter network namespace {path}: {source}")]
    Enter { path: PathBuf, source: nix::Error },
    /// The helper thread or its runtime could not be created.
    #[error("cannot start the thread for network namespace {path}: {source}")]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The work inside the namespace panicked.
    #[error("work inside network namespace {path} panicked")]
    Panicked { path: PathBuf },
    /// Creating or deleting a named namespace with `ip netns` failed.
    #[error("`{command}` failed: {stderr}")]
    IpNetns { command: String, stderr: String },
}

/// Runs the synchronous `work` on a new thread inside the namespace at `path`
/// (`/run/netns/<name>` or `/proc/<pid>/ns/net`) and returns its result.
/// Blocks the caller: do not call from an async task (use [`exec_in_netns`]).
pub fn run_in_netns<F, T>(path: &Path, work: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let ns = open(path)?;
    let owned = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || enter(&ns, &owned).map(|()| work()))
        .map_err(|source| thread_err(path, source))?;
    handle.join().map_err(|_| NetnsError::Panicked {
        path: path.to_path_buf(),
    })?
}

/// Like [`run_in_netns`], for async work: the future runs on a current-thread
/// tokio runtime owned by the namespace thread (so netlink connections opened
/// by it live in the namespace). Blocks the caller until done.
pub fn block_on_in_netns<F, Fut, T>(path: &Path, work: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let owned = path.to_path_buf();
    run_in_netns(path, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| thread_err(&owned, source))?;
        Ok(runtime.block_on(work()))
    })?
}

/// Async form of [`block_on_in_netns`] for callers inside a tokio runtime: the
/// namespace thread is spawned and awaited without blocking a worker.
pub async fn exec_in_netns<F, Fut, T>(path: &Path, work: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let _ = tx.send(block_on_in_netns(&owned, work));
        })
        .map_err(|source| thread_err(path, source))?;
    rx.await.map_err(|_| NetnsError::Panicked {
        path: path.to_path_buf(),
    })?
}

/// Opens a namespace file; done on the caller's thread so a bad path is
/// reported before any thread is spawned.
fn open(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_path_buf(),
        source,
    })
}

fn enter(ns: &File, path: &Path) -> Result<(), NetnsError> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
        NetnsError::Enter {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn thread_err(path: &Path, source: std::io::Error) -> NetnsError {
    NetnsError::Thread {
        path: path.to_path_buf(),
        source,
    }
}
