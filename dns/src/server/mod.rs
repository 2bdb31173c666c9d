//! The UDP and TCP listeners. Local answers are written synchronously
//! into a per-socket buffer from the current table snapshot (no task, no
//! allocation); only forwarded cache misses spawn a task.

mod answer;
mod chase;
mod handle;
mod listen;

pub use answer::{Outcome, answer_chased, answer_local};
pub use handle::{Context, Handled, Pending, Transport, forward_response, handle};
pub use listen::{Server, ServerConfig, ServerError};
