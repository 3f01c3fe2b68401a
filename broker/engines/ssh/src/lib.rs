//! The SSH engine (issue 12). This first part is pure: [`command`] reads an exec command line
//! the way the target user's POSIX shell will run it (quoting, control syntax, substitutions,
//! wrappers such as `sh -c` and `sudo`) and decides it against a role's exec rules before
//! anything reaches the host. The protocol side (russh on both ends) builds on it.

pub mod command;
pub mod session;

pub use command::{CommandLine, ExecRule, ExecRules, Judgement, Simple, Transfer, TransferKind};
pub use session::{HostKey, Journal, Params, Policy, Summary, Target, serve};
