//! `sluice approve ID` and `sluice deny ID --reason TEXT`: one approver's answer.
//!
//! The id says what is decided: `s_…` is a statement held inside a live session
//! (`POST /v1/holds/{id}/approve|deny`, answered with a [`HoldDecision`]: `approved s_1; it runs
//! now in its session`, `denied s_1`); anything else is a grant request
//! (`POST /v1/grants/{id}/approve|deny`, answered with the grant as the vote left it:
//! `approved g_1 (1 of 2); still pending`, `approved g_1; active until 14:32 (in 2h)`,
//! `denied g_1`).

use crate::args::{GlobalArgs, Output};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::{CliResult, Exit};
use crate::{format, present};
use sluice_shared::ErrorCode;
use sluice_shared::grants::{Decision, GRANTS_PATH, Grant, HOLDS_PATH, HoldDecision};

/// Prefix of held statements' ids (grants' start with `g_`).
pub const HOLD_PREFIX: &str = "s_";

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A pending grant request.
    Grant,
    /// A statement held inside a live session.
    Statement,
}

impl Target {
    /// By the id's prefix: `s_` is a statement; everything else goes to grants as it always
    /// did, so the broker's `grant_not_found` still answers a mistyped id.
    pub fn of(id: &str) -> Self {
        if id.starts_with(HOLD_PREFIX) {
            Self::Statement
        } else {
            Self::Grant
        }
    }
}

pub async fn run(
    global: &GlobalArgs,
    id: &str,
    approve: bool,
    reason: Option<String>,
    output: Output,
) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = TokenSource::Stored;
    match Target::of(id) {
        Target::Grant => {
            let grant = decide(&broker, &tokens, id, approve, reason).await?;
            match output {
                Output::Json => super::print_json(&grant),
                Output::Text => println!("{}", present::decision(&grant, approve, format::now())),
            }
        }
        Target::Statement => {
            let decided = decide_hold(&broker, &tokens, id, approve, reason).await?;
            match output {
                Output::Json => super::print_json(&decided),
                Output::Text => println!("{}", present::hold_decision(&decided, None)),
            }
        }
    }
    Ok(Exit::Ok as u8)
}

/// Where a decision on `id`, a `target`, is posted.
fn path(target: Target, id: &str, approve: bool) -> String {
    let verb = if approve { "approve" } else { "deny" };
    let base = match target {
        Target::Grant => GRANTS_PATH,
        Target::Statement => HOLDS_PATH,
    };
    format!("{base}/{}/{verb}", super::encode_segment(id))
}

/// `POST /v1/grants/{id}/approve` or `/deny`; the grant as the decision left it.
pub async fn decide(
    broker: &Broker,
    tokens: &TokenSource,
    id: &str,
    approve: bool,
    reason: Option<String>,
) -> CliResult<Grant> {
    let token = tokens.get(broker).await?;
    let path = path(Target::Grant, id, approve);
    broker.post(&path, &token, &Decision { reason }).await
}

/// `POST /v1/holds/{id}/approve` or `/deny`: the held statement runs, or is refused, in its
/// session at once. The broker's refusals get hints about statements rather than grants.
pub async fn decide_hold(
    broker: &Broker,
    tokens: &TokenSource,
    id: &str,
    approve: bool,
    reason: Option<String>,
) -> CliResult<HoldDecision> {
    let token = tokens.get(broker).await?;
    let path = path(Target::Statement, id, approve);
    broker
        .post(&path, &token, &Decision { reason })
        .await
        .map_err(|e| {
            let hint = if e.is(ErrorCode::Conflict) {
                "`sluice approvals` shows what still waits for you"
            } else if e.is(ErrorCode::Forbidden) {
                "a statement is decided by a member of its approver groups, never by the person whose session it is in"
            } else {
                return e;
            };
            e.hint(hint)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_ids_go_to_holds_and_everything_else_to_grants() {
        assert_eq!(Target::of("s_3fQ9"), Target::Statement);
        assert_eq!(Target::of("g_7Kx2"), Target::Grant);
        assert_eq!(Target::of("7Kx2"), Target::Grant);
        // Only the exact prefix counts.
        assert_eq!(Target::of("S_3fQ9"), Target::Grant);
        assert_eq!(Target::of("s3fQ9"), Target::Grant);

        let routed = |id: &str, approve: bool| path(Target::of(id), id, approve);
        assert_eq!(routed("s_3fQ9", true), "/v1/holds/s_3fQ9/approve");
        assert_eq!(routed("s_3fQ9", false), "/v1/holds/s_3fQ9/deny");
        assert_eq!(routed("g_7Kx2", true), "/v1/grants/g_7Kx2/approve");
        assert_eq!(routed("g_7Kx2", false), "/v1/grants/g_7Kx2/deny");
        assert_eq!(routed("s_a/../b", true), "/v1/holds/s_a%2F..%2Fb/approve");
    }
}
