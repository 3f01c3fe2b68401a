//! `sluice run RES --role ROLE -- CMD ARGS...`: one CI step with least privilege. Checks the
//! resource as `connect` does, asks for a fresh grant, waits for its approval, opens the tunnel
//! as `connect --exec` does, runs CMD, and revokes the grant when CMD exits, whichever way it
//! exits: success, failure, a signal passed on from Ctrl-C or SIGTERM, or the CLI being
//! interrupted while still waiting for approval (then the request is withdrawn). The exit code
//! is CMD's; a failed revocation is a warning, since the grant still expires on its own.

use super::connect::{Tunnel, check, token_source};
use super::grant;
use crate::args::{GlobalArgs, RunArgs};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::format::{self, clean};
use sluice_shared::ErrorCode;
use sluice_shared::api::ResourceCheck;
use sluice_shared::grants::{Grant, GrantRequest};

/// Why the grant is revoked once the command is done.
const REVOKE_REASON: &str = "command exited";
/// Why a request still waiting for approval is withdrawn.
const WITHDRAW_REASON: &str = "sluice run was interrupted before approval";

pub async fn run(global: &GlobalArgs, args: RunArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, args.workload.as_ref(), args.audience.as_deref()).await?;
    // Before asking anyone to approve: the resource exists, may be asked for, and answers.
    let check = check(&broker, &tokens, &args.resource).await?;
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| default_reason(&args.command));
    let request = GrantRequest {
        resource: check.name.clone(),
        role: Some(args.role.clone()),
        ttl_secs: args.ttl,
        reason,
        reuse: false,
    };
    let response = grant::ask(&broker, &tokens, &request).await?;
    for line in grant::report(&response.grant, false, true, format::now()) {
        eprintln!("{line}");
    }
    let id = response.grant.id.clone();
    let outcome = use_grant(&broker, &tokens, check, response.grant, &args.command).await;
    let interrupted = outcome.as_ref().is_err_and(|e| e.exit == Exit::Interrupted);
    let why = if interrupted {
        WITHDRAW_REASON
    } else {
        REVOKE_REASON
    };
    match grant::revoke(&broker, &tokens, &id, Some(why.to_string())).await {
        Ok(_) if interrupted => {}
        Ok(_) => eprintln!("sluice: revoked {}", clean(&id)),
        // Denied, lapsed, expired or revoked already: nothing left to end.
        Err(e) if e.is(ErrorCode::Conflict) => {}
        Err(e) => eprintln!(
            "sluice: warning: could not revoke {} ({}); it ends on its own when its TTL runs out",
            clean(&id),
            e.message
        ),
    }
    match outcome {
        Err(e) if interrupted => Err(CliError::new(
            e.exit,
            format!("stopped waiting; the request {} was withdrawn", clean(&id)),
        )),
        other => other,
    }
}

/// Waits for the grant, connects, runs the command.
async fn use_grant(
    broker: &Broker,
    tokens: &TokenSource,
    check: ResourceCheck,
    grant: Grant,
    command: &[String],
) -> CliResult<u8> {
    let grant = grant::until_active(broker, tokens, grant).await?;
    let tunnel = Tunnel::open(broker, tokens, check, grant, None).await?;
    tunnel.exec(command).await
}

/// `sluice run: PROGRAM`. Only the program: its arguments may hold secrets, and the reason is
/// shown to approvers and kept in the audit trail.
fn default_reason(command: &[String]) -> String {
    match command.first() {
        Some(program) => format!("sluice run: {program}"),
        None => "sluice run".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_reason_names_the_program_only() {
        let cmd = ["psql", "-c", "alter user x password 'hunter2'"].map(String::from);
        assert_eq!(default_reason(&cmd), "sluice run: psql");
        assert_eq!(
            default_reason(&["./migrate.sh".to_string()]),
            "sluice run: ./migrate.sh"
        );
    }
}
