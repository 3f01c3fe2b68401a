//! `sluice approve ID` and `sluice deny ID --reason TEXT`: one approver's answer, and the state
//! it left the grant in (`approved g_1 (1 of 2); still pending`, `approved g_1; active until
//! 14:32 (in 2h)`, `denied g_1`).

use crate::args::{GlobalArgs, Output};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::{CliResult, Exit};
use crate::{format, present};
use sluice_shared::grants::{Decision, GRANTS_PATH, Grant};

pub async fn run(
    global: &GlobalArgs,
    id: &str,
    approve: bool,
    reason: Option<String>,
    output: Output,
) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let grant = decide(&broker, &TokenSource::Stored, id, approve, reason).await?;
    match output {
        Output::Json => super::print_json(&grant),
        Output::Text => println!("{}", present::decision(&grant, approve, format::now())),
    }
    Ok(Exit::Ok as u8)
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
    let verb = if approve { "approve" } else { "deny" };
    let path = format!("{GRANTS_PATH}/{}/{verb}", super::encode_segment(id));
    broker.post(&path, &token, &Decision { reason }).await
}
