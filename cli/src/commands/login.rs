//! `sluice login` and `sluice logout`.

use crate::args::{GlobalArgs, LoginArgs};
use crate::exit::{CliError, CliResult, Exit};
use crate::profile::{self, Profile};
use sluice_shared::Secret;
use sluice_shared::api::WhoAmI;
use std::io::Read;

pub async fn login(global: &GlobalArgs, args: &LoginArgs) -> CliResult<u8> {
    if !args.token_stdin {
        return Err(CliError::new(
            Exit::Usage,
            "interactive login (OIDC device flow) is not available in this version",
        )
        .hint("pipe a token from `sluiced token issue` into `sluice login --token-stdin`"));
    }
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).map_err(|e| {
        CliError::new(
            Exit::Failure,
            format!("cannot read the token from stdin: {e}"),
        )
    })?;
    let token = Secret::new(raw.trim().to_string());
    if token.expose().is_empty() {
        return Err(CliError::new(Exit::Usage, "no token on standard input")
            .hint("pipe the token in: sluiced token issue ... | sluice login --token-stdin"));
    }
    let broker = super::broker(global)?;
    // Check the token with the broker before storing it, so a bad paste fails here.
    let me: WhoAmI = broker.get("/v1/whoami", Some(&token)).await?;
    let mut stored = profile::load()?;
    stored = Profile {
        broker: Some(broker.url().to_string()),
        ca: global.ca.clone().or(stored.ca.take()),
    };
    profile::save(&stored)?;
    let path = profile::store_token(&token)?;
    eprintln!(
        "Logged in to {} as {} (groups: {}); the token expires {}.",
        broker.url(),
        me.subject,
        if me.groups.is_empty() {
            "none".to_string()
        } else {
            me.groups.join(", ")
        },
        super::whoami::describe_expiry(me.expires_at),
    );
    eprintln!("Token stored in {} (file, mode 0600).", path.display());
    Ok(crate::exit::Exit::Ok as u8)
}

pub async fn logout(global: &GlobalArgs) -> CliResult<u8> {
    // Tell the broker first, so the token is dead even if a copy of it exists elsewhere; a
    // broker that cannot be reached does not keep the local copy alive.
    if let (Ok(token), Ok(broker)) = (profile::token(), super::broker(global)) {
        match broker.post_empty("/v1/auth/logout", &token).await {
            Ok(()) => eprintln!("The broker revoked the session token."),
            Err(e) => eprintln!(
                "sluice: the broker did not revoke the token ({}); removing it here anyway",
                e.message
            ),
        }
    }
    if profile::remove_token()? {
        eprintln!("Logged out: the stored session token was removed.");
    } else {
        eprintln!("Not logged in: there was no stored session token.");
    }
    Ok(crate::exit::Exit::Ok as u8)
}
