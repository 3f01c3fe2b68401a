//! The session token for a command, renewed first when it is about to expire.
//!
//! Every command that presents the token (whoami, connect before it starts and before each new
//! tunnel, every call of the long waits: `approvals --watch`, waiting for an approval) calls
//! [`token`], usually through [`TokenSource`]. When the stored token came from a device-flow
//! login, expires within [`RENEW_BEFORE`] and a refresh token is stored, the refresh-token grant
//! gets a new ID token from the provider, the broker exchanges it for a new session token, and
//! both new tokens are stored (providers rotate refresh tokens, so the old one is dead after
//! use).

use super::idp::Idp;
use crate::client::Broker;
use crate::exit::CliResult;
use crate::profile::{self, OidcLogin, TokenStore};
use sluice_shared::Secret;
use sluice_shared::api::{ExchangeRequest, ExchangeResponse, TokenKind};

/// Renew when the session token has less than this left.
pub const RENEW_BEFORE: u64 = 120;

/// One renewal at a time in this process: concurrent tunnels must not both spend the same
/// (rotating) refresh token.
static RENEWING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where a command gets its session token each time it presents one.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A token fixed for this command (`--workload` exchanged one for this command only).
    Fixed(Secret<String>),
    /// `SLUICE_TOKEN` or the stored login, read (and renewed if needed) on every use, so a
    /// command that runs for hours keeps working and a `sluice login` elsewhere fixes it.
    Stored,
    /// `sluice mcp`: the broker's agent token for this server (`POST /v1/auth/agent`), asked
    /// for again with the caller's own token when it nears its end.
    Agent(std::sync::Arc<AgentToken>),
}

/// An agent token and the caller's token it is derived from.
#[derive(Debug)]
pub struct AgentToken {
    /// The caller's own token.
    pub parent: Box<TokenSource>,
    /// The current agent token and its expiry.
    current: tokio::sync::Mutex<Option<(Secret<String>, u64)>>,
}

impl AgentToken {
    pub fn new(parent: TokenSource) -> Self {
        Self {
            parent: Box::new(parent),
            current: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self, broker: &Broker) -> CliResult<Secret<String>> {
        let mut current = self.current.lock().await;
        if let Some((token, expires_at)) = current.as_ref()
            && *expires_at > crate::format::now() + RENEW_BEFORE
        {
            return Ok(token.clone());
        }
        let parent = Box::pin(self.parent.get(broker)).await?;
        let request = sluice_shared::api::AgentTokenRequest {
            client: "mcp".to_owned(),
        };
        let answer: ExchangeResponse = broker.post("/v1/auth/agent", &parent, &request).await?;
        let token = Secret::new(answer.token);
        *current = Some((token.clone(), answer.expires_at));
        Ok(token)
    }
}

impl TokenSource {
    /// The token to present now.
    pub async fn get(&self, broker: &Broker) -> CliResult<Secret<String>> {
        match self {
            Self::Fixed(token) => Ok(token.clone()),
            Self::Stored => token(broker).await,
            Self::Agent(agent) => agent.get(broker).await,
        }
    }
}

/// The session token to present, renewed first if it is about to expire.
pub async fn token(broker: &Broker) -> CliResult<Secret<String>> {
    if std::env::var("SLUICE_TOKEN").is_ok_and(|t| !t.trim().is_empty()) {
        return profile::token();
    }
    let Some(login) = profile::oidc_login()? else {
        return profile::token();
    };
    if login.expires_at > now() + RENEW_BEFORE {
        return profile::token();
    }
    let _guard = RENEWING.lock().await;
    // Another tunnel may have renewed while this one waited.
    let Some(login) = profile::oidc_login()? else {
        return profile::token();
    };
    if login.expires_at > now() + RENEW_BEFORE {
        return profile::token();
    }
    let Some(refresh_token) = profile::refresh_token()? else {
        return profile::token();
    };
    match renew(broker, &login, &refresh_token).await {
        Ok(_) => profile::token(),
        // A token that still works is better than none; the broker will say when it stops.
        Err(e) if login.expires_at > now() => {
            eprintln!(
                "sluice: could not renew the session ({}); using the current token",
                e.message
            );
            profile::token()
        }
        Err(e) => Err(e),
    }
}

/// Refresh at the provider, exchange at the broker, store both.
async fn renew(
    broker: &Broker,
    login: &OidcLogin,
    refresh_token: &Secret<String>,
) -> CliResult<ExchangeResponse> {
    let idp = Idp::discover(&login.issuer, &login.client_id).await?;
    let tokens = idp.refresh(refresh_token).await?;
    let session = exchange(broker, &tokens.id_token).await?;
    // Renewals stay where the login put the tokens.
    let where_ = profile::load()?.token_store;
    store(
        where_,
        login.clone(),
        &session,
        tokens.refresh_token.as_ref(),
    )?;
    Ok(session)
}

/// `POST /v1/auth/token` with an ID token.
pub async fn exchange(broker: &Broker, id_token: &Secret<String>) -> CliResult<ExchangeResponse> {
    broker
        .post_json(
            "/v1/auth/token",
            &ExchangeRequest {
                kind: TokenKind::Oidc,
                token: id_token.expose().clone(),
            },
        )
        .await
}

/// Stores a session from a device login or a renewal in `store`; returns where it went.
pub fn store(
    store: TokenStore,
    mut login: OidcLogin,
    session: &ExchangeResponse,
    refresh_token: Option<&Secret<String>>,
) -> CliResult<String> {
    login.expires_at = session.expires_at;
    profile::store_oidc_session(
        store,
        &Secret::new(session.token.clone()),
        &login,
        refresh_token,
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
