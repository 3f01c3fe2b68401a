//! The contract between `sluice` (the CLI) and `sluiced` (the broker).
//!
//! Only types that cross the wire live here: API request and response bodies, the stable error
//! codes the broker returns, the tunnel handshake, the audit chain and its verifier
//! ([`audit`]), and [`Secret`], the wrapper that keeps credentials out of logs on both sides. No
//! I/O and no async runtime: both binaries depend on this crate and never on each other.

pub mod api;
pub mod audit;
pub mod error;
pub mod grants;
pub mod recording;
pub mod secret;
pub mod sessions;
pub mod tunnel;

pub use error::{ApiError, ErrorCode};
pub use secret::Secret;
