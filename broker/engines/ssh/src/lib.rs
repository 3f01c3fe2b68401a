//! The SSH engine: [`session`] terminates the client's SSH and logs in to the host (russh on
//! both ends); [`command`] reads an exec command line as the target user's shell will run it
//! and decides it; [`files`] judges paths, which [`resolve`] asks the host to resolve;
//! [`sftp`] reads the SFTP messages the relay judges.

pub mod command;
pub mod credential;
pub mod files;
pub mod resolve;
pub mod session;
pub mod sftp;
mod sftp_relay;

pub use command::{CommandLine, ExecRule, ExecRules, Judgement, Simple, Transfer, TransferKind};
pub use credential::Credential;
pub use files::{Access, FileRules, Refusal};
pub use session::{
    DEFAULT_LOGIN, FileEvent, FileOutcome, HostKey, Journal, Params, Policy, Summary, Target, serve,
};
