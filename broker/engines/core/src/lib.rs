//! The pieces every protocol engine of the broker shares.
//!
//! - [`Lease`]: the live authorization a session runs under. The broker holds the sending side;
//!   engines race every wait against [`Lease::revoked`] (or, in a loop that waits on every
//!   read, one [`LeaseWatch`]) so a revoked or expired authorization closes the session
//!   mid-stream.
//! - [`relay`]: the opaque byte relay between a client stream and a target stream, with byte
//!   counts, ended by either side closing or by the lease.
//! - [`tcp`]: the TCP engine, which is only a connect plus [`relay`].
//! - [`hold`]: the approval hold every engine files its risky actions through.
//! - [`glob`]: the `*`/`?` matcher engines' rules use for names and command lines.
//! - [`socket`]: socket options tokio does not expose (the read low-water mark).
//!
//! Engines never see storage, identity or the HTTP API: what they need arrives as values.

pub mod glob;
pub mod hold;
pub mod lease;
pub mod relay;
pub mod socket;
pub mod tcp;

pub use lease::{Lease, LeaseHandle, LeaseState, LeaseWatch};
pub use relay::{RelayEnd, RelayOutcome, relay};
