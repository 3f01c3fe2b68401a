//! `sluice login` and `sluice logout`.
//!
//! `login` runs the OIDC device flow (RFC 8628) against the provider the broker names in
//! `GET /v1/auth/config`, exchanges the ID token at `POST /v1/auth/token`, and stores the session
//! token with what renewing it needs. `login --token-stdin` stores a token from
//! `sluiced token issue` instead.

use crate::args::{GlobalArgs, LoginArgs};
use crate::auth::idp::{Idp, Prompt};
use crate::auth::session;
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::profile::{self, OidcLogin, TokenStore};
use crate::progress::Progress;
use sluice_shared::Secret;
use sluice_shared::api::{AuthConfig, OidcProvider, WhoAmI};
use std::io::Read;

pub async fn login(global: &GlobalArgs, args: &LoginArgs) -> CliResult<u8> {
    if let Some(source) = &args.workload {
        return workload_login(global, source, args).await;
    }
    if !args.token_stdin {
        return device_login(global, args).await;
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
    let path = store_plain(global, &broker, &token)?;
    eprintln!(
        "Logged in to {} as {} (groups: {}); the token expires {}.",
        broker.url(),
        me.subject,
        super::groups(&me.groups),
        super::whoami::describe_expiry(me.expires_at),
    );
    eprintln!("Token stored in {} (file, mode 0600).", path.display());
    Ok(crate::exit::Exit::Ok as u8)
}

/// Stores a session token that is not renewed (operator or workload), with the broker it is for;
/// replaces any device-login state.
fn store_plain(
    global: &GlobalArgs,
    broker: &Broker,
    token: &Secret<String>,
) -> CliResult<std::path::PathBuf> {
    let mut stored = profile::load()?;
    stored.broker = Some(broker.url().to_string());
    stored.ca = global.ca.clone().or(stored.ca.take());
    profile::save(&stored)?;
    profile::forget_oidc_session()?;
    profile::store_token(token)
}

/// A CI job or agent: exchange the platform's token; print the session token, or store it.
async fn workload_login(
    global: &GlobalArgs,
    source: &crate::workload::Source,
    args: &LoginArgs,
) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let session = crate::workload::login(&broker, source, args.audience.as_deref()).await?;
    eprintln!(
        "Logged in to {} as workload {} (groups: {}); the token expires {}.",
        broker.url(),
        session.subject,
        super::groups(&session.groups),
        super::whoami::describe_expiry(session.expires_at),
    );
    if args.store {
        let path = store_plain(global, &broker, &Secret::new(session.token))?;
        eprintln!("Token stored in {} (file, mode 0600).", path.display());
    } else {
        // Nothing is written in this mode: the caller keeps the token for this job only.
        println!("{}", session.token);
        eprintln!("Use it for this job only: export SLUICE_TOKEN=$(sluice login --workload ...)");
    }
    Ok(crate::exit::Exit::Ok as u8)
}

/// The device flow: pick the provider, show the code, wait, exchange, store.
async fn device_login(global: &GlobalArgs, args: &LoginArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    // Before the person approves anything: a store that cannot work fails now.
    let store = TokenStore::choose()?;
    let config: AuthConfig = broker.get("/v1/auth/config", None).await?;
    let provider = pick_provider(&broker, config.oidc, args.issuer.as_deref())?;
    let idp = Idp::discover(&provider.issuer, &provider.client_id).await?;
    let device = idp.start_device_login(&provider.scopes).await?;
    let prompt = device.prompt();
    show_prompt(&provider, &prompt);
    let tokens = {
        let minutes = prompt.expires_in.as_secs().div_ceil(60);
        let progress = Progress::start(format!(
            "Waiting for the approval (the code expires in {minutes} min)"
        ));
        let tokens = device.wait().await;
        progress.finish();
        tokens?
    };
    let session = session::exchange(&broker, &tokens.id_token).await?;

    let mut stored = profile::load()?;
    stored.broker = Some(broker.url().to_string());
    stored.ca = global.ca.clone().or(stored.ca.take());
    profile::save(&stored)?;
    let login = OidcLogin {
        provider: provider.name.clone(),
        issuer: provider.issuer.clone(),
        client_id: provider.client_id.clone(),
        scopes: provider.scopes.clone(),
        expires_at: session.expires_at,
    };
    let place = session::store(store, login, &session, tokens.refresh_token.as_ref())?;
    eprintln!(
        "Logged in to {} as {} (groups: {}) through {}; the session token expires {}.",
        broker.url(),
        session.subject,
        super::groups(&session.groups),
        provider.name,
        super::whoami::describe_expiry(session.expires_at),
    );
    let renewal = if tokens.refresh_token.is_some() {
        "; it is renewed silently with the provider's refresh token, stored beside it"
    } else {
        "; the provider gave no refresh token, so run `sluice login` again when it expires"
    };
    eprintln!("Token stored in {place}{renewal}.");
    Ok(Exit::Ok as u8)
}

/// The only provider, or the one named with `--issuer`.
fn pick_provider(
    broker: &Broker,
    providers: Vec<OidcProvider>,
    wanted: Option<&str>,
) -> CliResult<OidcProvider> {
    let names = providers
        .iter()
        .map(|p| p.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let count = providers.len();
    let mut matching = providers
        .into_iter()
        .filter(|p| wanted.is_none_or(|name| p.name == name));
    match (matching.next(), wanted) {
        (Some(p), Some(_)) => Ok(p),
        (Some(p), None) if count == 1 => Ok(p),
        (None, _) if count == 0 => Err(CliError::new(
            Exit::Usage,
            format!(
                "the broker at {} has no identity provider for people configured",
                broker.url()
            ),
        )
        .hint("ask its administrator to add one under identity.oidc, or log in with `sluice login --token-stdin` and a token from `sluiced token issue`")),
        (None, Some(name)) => Err(CliError::new(
            Exit::Usage,
            format!("the broker has no identity provider named '{name}'"),
        )
        .hint(format!("choose one of: {names}"))),
        _ => Err(
            CliError::new(Exit::Usage, "the broker trusts several identity providers")
                .hint(format!("pick one with --issuer NAME: {names}")),
        ),
    }
}

fn show_prompt(provider: &OidcProvider, prompt: &Prompt) {
    eprintln!(
        "Logging in through {} ({}).",
        provider.name, provider.issuer
    );
    match &prompt.verification_uri_complete {
        Some(complete) => {
            eprintln!("Open this page in a browser and approve the login:");
            eprintln!("  {complete}");
            eprintln!(
                "or open {} and enter the code: {}",
                prompt.verification_uri, prompt.user_code
            );
        }
        None => {
            eprintln!(
                "Open {} in a browser and enter the code: {}",
                prompt.verification_uri, prompt.user_code
            );
        }
    }
}

pub async fn logout(global: &GlobalArgs) -> CliResult<u8> {
    // Tell the broker first, so the token is dead even if a copy of it exists elsewhere; a
    // broker that cannot be reached does not keep the local copy alive.
    if let (Ok(token), Ok(broker)) = (profile::token(), super::broker(global)) {
        match broker.post_empty("/v1/auth/logout", &token).await {
            Ok(()) => eprintln!("The broker revoked the session token."),
            // The broker is up but could not record the revocation: the token stays valid
            // there, so keep it here too and let the user retry rather than pretend.
            Err(e) if e.is(sluice_shared::ErrorCode::Unavailable) => {
                return Err(e);
            }
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
