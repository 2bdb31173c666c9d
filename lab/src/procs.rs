//! Processes the lab started, recorded with their start time so that a
//! later `down` (even from another process) signals exactly those PIDs and
//! never a recycled one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One started process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcEntry {
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat: distinguishes a recycled PID.
    pub start_time: u64,
    /// The process leads its own process group (pod containers).
    pub group: bool,
    pub role: String,
}

/// The in-memory registry mirrored to a file.
#[derive(Debug)]
pub struct ProcRegistry {
    file: PathBuf,
    entries: Mutex<BTreeMap<i32, ProcEntry>>,
}

/// Start time of a live process, `None` if it is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn state_char(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

impl ProcRegistry {
    pub fn new(file: PathBuf) -> ProcRegistry {
        ProcRegistry {
            file,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records a just-spawned process.
    pub fn add(&self, pid: u32, group: bool, role: &str) {
        let pid = pid as i32;
        let entry = ProcEntry {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            group,
            role: role.to_string(),
        };
        let mut map = self.lock();
        map.insert(pid, entry);
        self.persist(&map);
    }

    /// Forgets a process that has exited.
    pub fn remove(&self, pid: u32) {
        let mut map = self.lock();
        map.remove(&(pid as i32));
        self.persist(&map);
    }

    pub fn entries(&self) -> Vec<ProcEntry> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, ProcEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, map: &BTreeMap<i32, ProcEntry>) {
        let text: String = map.values().map(render).collect();
        let tmp = self.file.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }
}

fn render(e: &ProcEntry) -> String {
    format!(
        "{} {} {} {}\n",
        e.pid,
        e.start_time,
        if e.group { "group" } else { "pid" },
        e.role
    )
}

/// Parses a registry file written by [`ProcRegistry`]; bad lines are skipped.
pub fn parse(text: &str) -> Vec<ProcEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            Some(ProcEntry {
                pid: f.next()?.parse().ok()?,
                start_time: f.next()?.parse().ok()?,
                group: f.next()? == "group",
                role: f.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Reads a registry file (missing file = nothing recorded).
pub fn read(file: &Path) -> Vec<ProcEntry> {
    std::fs::read_to_string(file)
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Whether this entry still names the process we started.
pub fn is_same(e: &ProcEntry) -> bool {
    e.pid > 1 && start_time(e.pid).is_some_and(|t| t == e.start_time || e.start_time == 0)
}

/// The recorded process still exists and is not a zombie (a zombie whose
/// parent died is reaped by init a moment later and holds nothing).
pub fn is_running(e: &ProcEntry) -> bool {
    is_same(e) && !matches!(state_char(e.pid), None | Some('Z') | Some('X'))
}

fn signal(e: &ProcEntry, sig: libc::c_int) {
    // SAFETY: kill(2) on a PID (or the group it leads) we started.
    unsafe {
        if e.group {
            libc::kill(-e.pid, sig);
        }
        libc::kill(e.pid, sig);
    }
}

fn gone(pid: i32) -> bool {
    // Reap it if it is our child; a zombie counts as gone once reaped.
    // SAFETY: waitpid with WNOHANG on a specific PID.
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
    }
    matches!(state_char(pid), None | Some('Z') | Some('X'))
}

/// SIGTERM, up to `grace` for them to exit, then SIGKILL; blocking.
/// Only entries that still match their recorded start time are signalled.
pub fn stop_all(entries: &[ProcEntry], grace: Duration) {
    let live: Vec<&ProcEntry> = entries.iter().filter(|e| is_same(e)).collect();
    live.iter().for_each(|e| signal(e, libc::SIGTERM));
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !live.iter().all(|e| gone(e.pid)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for e in live.iter().filter(|e| !gone(e.pid)) {
        signal(e, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !live.iter().all(|e| gone(e.pid)) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// PIDs of processes living in one of the given network namespaces (by
/// inode). Only lab processes ever enter lab namespaces, so after a crashed
/// lab these are ours even when the registry missed them.
pub fn in_namespaces(inodes: &[u64]) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != std::process::id() as i32)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| inodes.contains(&m.ino()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_file_round_trips() {
        let e = ProcEntry {
            pid: 42,
            start_time: 7,
            group: true,
            role: "pod default/a c1".into(),
        };
        let parsed = parse(&(render(&e) + "garbage\n"));
        assert_eq!(parsed, vec![e]);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert!(start_time(i32::MAX).is_none());
    }
}
