//! Running the steps: find, then remove (unless dry-run), collecting errors.

use crate::item::Item;
use crate::steps::Step;

/// Remove, or only report what would be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Remove,
    DryRun,
}

/// The underlying failure of a find or remove.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Link(#[from] host::link::LinkError),
    #[error(transparent)]
    Nft(#[from] host::nft::NftError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Iptables(#[from] crate::iptables::IptablesError),
    #[error(transparent)]
    Ipset(#[from] crate::ipset::IpsetError),
    #[error(transparent)]
    Overlay(#[from] flannel::overlay::OverlayError),
    #[error(transparent)]
    NodeLocalDns(#[from] dns::node_local::NodeLocalError),
    /// An item only its step's own teardown can remove was handed to the
    /// per-item removal (a bug in a step).
    #[error("{0} can only be removed by its step's teardown")]
    NotIndividually(String),
}

/// One failure; the run went on after it.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// A step could not find out what exists.
    #[error("{step}: cannot look for leftovers: {source}")]
    Find {
        step: &'static str,
        #[source]
        source: Cause,
    },
    /// A step removing its objects as a whole failed (partly).
    #[error("{step}: {source}")]
    Whole {
        step: &'static str,
        #[source]
        source: Cause,
    },
    /// A found item could not be removed.
    #[error("{step}: cannot remove {item}: {source}")]
    Remove {
        step: &'static str,
        item: Item,
        #[source]
        source: Cause,
    },
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Removed (or, in a dry run, found and to be removed), in order.
    pub removed: Vec<Item>,
    pub errors: Vec<CleanupError>,
}

/// Runs `steps` in order. Never stops early: every step is tried.
pub async fn run(steps: &[Box<dyn Step>], mode: Mode) -> Report {
    let mut report = Report::default();
    for step in steps {
        if mode == Mode::Remove
            && let Some(removal) = step.remove_all()
        {
            let (removed, causes) = removal.await;
            report.removed.extend(removed);
            let step = step.name();
            let errors = causes
                .into_iter()
                .map(|source| CleanupError::Whole { step, source });
            report.errors.extend(errors);
            continue;
        }
        let found = match step.find().await {
            Ok(found) => found,
            Err(source) => {
                report.errors.push(CleanupError::Find {
                    step: step.name(),
                    source,
                });
                continue;
            }
        };
        for item in found {
            remove(step.name(), item, mode, &mut report).await;
        }
    }
    report
}

async fn remove(step: &'static str, item: Item, mode: Mode, report: &mut Report) {
    if mode == Mode::DryRun {
        report.removed.push(item);
        return;
    }
    match item.remove().await {
        Ok(true) => report.removed.push(item),
        Ok(false) => tracing::debug!(%item, "already gone"),
        Err(source) => report
            .errors
            .push(CleanupError::Remove { step, item, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Found;

    /// A step whose discovery always fails.
    struct Broken;
    impl Step for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn find(&self) -> Found<'_> {
            Box::pin(async { Err(Cause::Io(std::io::Error::other("disk on fire"))) })
        }
    }

    /// A step that finds one fixed file.
    struct OneFile(std::path::PathBuf);
    impl Step for OneFile {
        fn name(&self) -> &'static str {
            "one file"
        }
        fn find(&self) -> Found<'_> {
            Box::pin(async { Ok(vec![Item::File(self.0.clone())]) })
        }
    }

    #[tokio::test]
    async fn errors_are_collected_and_later_steps_still_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ours");
        std::fs::write(&file, "x").expect("write");
        let steps: Vec<Box<dyn Step>> = vec![Box::new(Broken), Box::new(OneFile(file.clone()))];
        let report = run(&steps, Mode::Remove).await;
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0]
                .to_string()
                .contains("broken: cannot look for leftovers: disk on fire")
        );
        assert_eq!(report.removed, vec![Item::File(file.clone())]);
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn already_gone_is_not_reported_as_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let steps: Vec<Box<dyn Step>> = vec![Box::new(OneFile(dir.path().join("missing")))];
        let report = run(&steps, Mode::Remove).await;
        assert!(report.removed.is_empty() && report.errors.is_empty());
    }
}
