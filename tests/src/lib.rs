//! The end-to-end test harness: real PostgreSQL clusters, the real `sluiced` and `sluice`
//! binaries, real `psql`. Everything listens on 127.0.0.1 on free ports and is torn down when
//! its handle drops.
//!
//! - [`Postgres`]: a throwaway cluster (`initdb` into a temp dir, SCRAM for host connections, an
//!   application role whose password only the broker config knows).
//! - [`Broker`]: `sluiced init` + a generated config + `sluiced serve`, stopped on drop.
//! - [`Cli`]: runs `sluice` with its own state directory, pointed at a broker.

pub mod broker;
pub mod ci_issuer;
pub mod cli;
pub mod guard;
pub mod measure;
pub mod metrics;
pub mod oidc;
pub mod postgres;
pub mod s3;
pub mod session;
pub mod sshd;
pub mod util;

pub use broker::{Broker, BrokerBuilder};
pub use cli::{Cli, Connect};
pub use oidc::OidcProvider;
pub use postgres::Postgres;
pub use s3::S3;
pub use session::OpenSession;
pub use sshd::Sshd;
pub use util::{files_text, free_port, wait_for, workspace_bin};
