//! Coalesced "something changed" signals.
//!
//! A reflector bumps a generation counter in a `tokio::sync::watch` channel
//! for every applied change. A watch channel only keeps the latest value, so
//! any number of bumps between two waits is seen as one change; `Changes`
//! additionally waits a short settle window after the first bump so that a
//! burst (a full relist, a controller touching many objects) wakes a
//! component once instead of once per object.

use std::time::Duration;

use futures::future::select_all;
use tokio::sync::watch;

/// Every sender behind a `Changes` is gone: the reflector task ended, which
/// only happens when the registry shuts down.
#[derive(Debug, thiserror::Error)]
#[error("change source closed (reflector stopped)")]
pub struct SourceClosed;

/// A coalescing wake-up over one or more change sources.
#[derive(Debug, Clone)]
pub struct Changes {
    sources: Vec<watch::Receiver<u64>>,
    settle: Duration,
    /// A change was seen but its wake not yet delivered: `changed()` was
    /// dropped during the settle window (a `select!` or timeout around it).
    /// The next call delivers it instead of losing it.
    pending: bool,
}

impl Changes {
    /// Wakes on changes of `source`, coalescing bursts within `settle`.
    pub fn new(source: watch::Receiver<u64>, settle: Duration) -> Self {
        Changes {
            sources: vec![source],
            settle,
            pending: false,
        }
    }

    /// Wakes on changes of `self` or `other` (one signal for a component
    /// that reads several resource types); keeps the longer settle window.
    pub fn and(mut self, other: Changes) -> Self {
        self.settle = self.settle.max(other.settle);
        self.pending |= other.pending;
        self.sources.extend(other.sources);
        self
    }

    /// Waits for the next change; everything that arrived until the settle
    /// window ends is consumed by this one wake.
    pub async fn changed(&mut self) -> Result<(), SourceClosed> {
        if !self.pending {
            let waits = self.sources.iter_mut().map(|rx| Box::pin(rx.changed()));
            let first = select_all(waits).await.0;
            first.map_err(|_| SourceClosed)?;
            self.pending = true;
        }
        tokio::time::sleep(self.settle).await;
        for rx in &mut self.sources {
            rx.borrow_and_update();
        }
        self.pending = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(100);
    const LONG: Duration = Duration::from_secs(3600);

    /// True when `changed()` returns within an hour of (paused) time.
    async fn wakes(changes: &mut Changes) -> bool {
        tokio::time::timeout(LONG, changes.changed()).await.is_ok()
    }

    /// `changed()` cancelled inside its settle window (by a timeout or a
    /// `select!`) must not swallow the change: the next call delivers it.
    #[tokio::test(start_paused = true)]
    async fn a_wait_cancelled_while_settling_keeps_its_change() {
        let (tx, rx) = watch::channel(0u64);
        let mut changes = Changes::new(rx, SETTLE);
        tx.send_replace(1);
        let cut_short = tokio::time::timeout(SETTLE / 2, changes.changed()).await;
        assert!(
            cut_short.is_err(),
            "the first wait was cancelled mid-settle"
        );
        assert!(wakes(&mut changes).await, "the change was lost");
        assert!(!wakes(&mut changes).await, "and delivered only once");
    }

    #[tokio::test(start_paused = true)]
    async fn burst_before_wait_is_one_wake() {
        let (tx, rx) = watch::channel(0u64);
        let mut changes = Changes::new(rx, SETTLE);
        for i in 1..=100 {
            tx.send_replace(i);
        }
        assert!(wakes(&mut changes).await);
        assert!(!wakes(&mut changes).await, "second wake without new change");
    }

    #[tokio::test(start_paused = true)]
    async fn burst_inside_settle_window_is_one_wake() {
        let (tx, rx) = watch::channel(0u64);
        let mut changes = Changes::new(rx, SETTLE);
        let sender = tokio::spawn(async move {
            for i in 1..=10 {
                tx.send_replace(i);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tx
        });
        assert!(wakes(&mut changes).await);
        let tx = sender.await.expect("sender task");
        assert!(
            !wakes(&mut changes).await,
            "events inside the window re-woke"
        );
        tx.send_replace(99);
        assert!(wakes(&mut changes).await, "a later change must wake again");
    }

    #[tokio::test(start_paused = true)]
    async fn changes_after_window_wake_again() {
        let (tx, rx) = watch::channel(0u64);
        let mut changes = Changes::new(rx, SETTLE);
        tx.send_replace(1);
        assert!(wakes(&mut changes).await);
        tx.send_replace(2);
        assert!(wakes(&mut changes).await);
    }

    #[tokio::test(start_paused = true)]
    async fn merged_sources_wake_on_either_once() {
        let (tx_a, rx_a) = watch::channel(0u64);
        let (tx_b, rx_b) = watch::channel(0u64);
        let mut changes = Changes::new(rx_a, SETTLE).and(Changes::new(rx_b, SETTLE));
        tx_b.send_replace(1);
        tx_a.send_replace(1);
        assert!(wakes(&mut changes).await);
        assert!(!wakes(&mut changes).await, "both sources must be consumed");
        tx_a.send_replace(2);
        assert!(wakes(&mut changes).await);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_source_is_an_error() {
        let (tx, rx) = watch::channel(0u64);
        let mut changes = Changes::new(rx, SETTLE);
        drop(tx);
        assert!(changes.changed().await.is_err());
    }
}
