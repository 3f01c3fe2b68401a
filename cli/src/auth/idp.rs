//! Talking to the identity provider: OpenID discovery, the RFC 8628 device authorization grant,
//! and the refresh-token grant, through `openidconnect` with a small adapter to reqwest 0.13.
//!
//! The provider is trusted through the system's roots (never the broker's `--ca`), and redirects
//! are not followed: a token endpoint that redirects is refused rather than followed elsewhere.

use crate::exit::{CliError, CliResult, Exit};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, ClientId, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IssuerUrl, OAuth2TokenResponse, ProviderMetadata, RefreshToken,
    RequestTokenError, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sluice_shared::Secret;
use std::sync::Arc;
use std::time::Duration;

/// How long one request to the provider may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Discovery metadata plus the device authorization endpoint, which the core type lacks.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}

type Metadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The client `from_provider_metadata` builds: endpoints as discovery found them.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What the provider hands back after a device login or a refresh.
#[derive(Debug)]
pub struct Tokens {
    /// The ID token (a JWT), exchanged at the broker for a session token.
    pub id_token: Secret<String>,
    /// The refresh token, if `offline_access` was granted. Providers may rotate it on every use.
    pub refresh_token: Option<Secret<String>>,
}

/// What to show the person while the device login waits for approval.
#[derive(Debug)]
pub struct Prompt {
    /// The page to open.
    pub verification_uri: String,
    /// The same page with the code filled in, when the provider offers it.
    pub verification_uri_complete: Option<String>,
    /// The code to type in.
    pub user_code: String,
    /// How long the code stays valid.
    pub expires_in: Duration,
}

/// A discovered provider with the CLI's public client.
#[derive(Debug)]
pub struct Idp {
    http: reqwest::Client,
    metadata: Metadata,
    client_id: String,
    issuer: String,
}

impl Idp {
    /// Fetches `ISSUER/.well-known/openid-configuration` (and the JWKS, as discovery does).
    pub async fn discover(issuer: &str, client_id: &str) -> CliResult<Self> {
        let tls = crate::client::tls_config(None)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| {
                CliError::new(Exit::Failure, format!("cannot build the HTTP client: {e}"))
            })?;
        let issuer_url = IssuerUrl::new(issuer.to_string()).map_err(|e| {
            CliError::new(
                Exit::Failure,
                format!("the broker names an invalid issuer URL '{issuer}': {e}"),
            )
            .hint("tell the broker's administrator")
        })?;
        let adapter = adapter(&http);
        let metadata = Metadata::discover_async(issuer_url, &adapter)
            .await
            .map_err(|e| unreachable_idp(issuer, &e))?;
        Ok(Self {
            http,
            metadata,
            client_id: client_id.to_string(),
            issuer: issuer.to_string(),
        })
    }

    /// Starts a device login: asks the provider for a device code and a user code.
    pub async fn start_device_login(&self, scopes: &[String]) -> CliResult<DeviceLogin<'_>> {
        let endpoint = self
            .metadata
            .additional_metadata()
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| {
                CliError::new(
                    Exit::Failure,
                    format!(
                        "the identity provider {} does not offer the device flow (no device_authorization_endpoint)",
                        self.issuer
                    ),
                )
                .hint("enable the device authorization grant at the provider, or use `sluice login --token-stdin`")
            })?;
        let client = self.client().set_device_authorization_url(endpoint);
        let mut request = client.exchange_device_code();
        for s in scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let adapter = adapter(&self.http);
        let details: CoreDeviceAuthorizationResponse = request
            .request_async(&adapter)
            .await
            .map_err(|e| self.refused("the device authorization request", &e))?;
        Ok(DeviceLogin { idp: self, details })
    }

    /// The refresh-token grant: a new ID token (and usually a new refresh token).
    pub async fn refresh(&self, refresh_token: &Secret<String>) -> CliResult<Tokens> {
        let client = self.client();
        let token = RefreshToken::new(refresh_token.expose().clone());
        let adapter = adapter(&self.http);
        let response = client
            .exchange_refresh_token(&token)
            .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?
            .request_async(&adapter)
            .await
            .map_err(|e| {
                CliError::new(
                    Exit::NotAuthenticated,
                    format!(
                        "the identity provider refused to refresh the login ({})",
                        describe(&e)
                    ),
                )
                .hint("run `sluice login` again")
            })?;
        tokens(response)
    }

    fn client(&self) -> DiscoveredClient {
        CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(self.client_id.clone()),
            None,
        )
        // A public client: the client id goes in the body, there is no secret.
        .set_auth_type(AuthType::RequestBody)
    }

    fn refused(
        &self,
        what: &str,
        e: &RequestTokenError<HttpError, impl openidconnect::ErrorResponse + 'static>,
    ) -> CliError {
        CliError::new(
            Exit::Failure,
            format!(
                "{what} to the identity provider {} failed: {}",
                self.issuer,
                describe(e)
            ),
        )
        .hint("check that the broker's identity provider settings are right")
    }
}

/// A started device login: show [`DeviceLogin::prompt`], then [`DeviceLogin::wait`].
#[derive(Debug)]
pub struct DeviceLogin<'a> {
    idp: &'a Idp,
    details: CoreDeviceAuthorizationResponse,
}

impl DeviceLogin<'_> {
    /// What the person must do.
    pub fn prompt(&self) -> Prompt {
        Prompt {
            verification_uri: self.details.verification_uri().to_string(),
            verification_uri_complete: self
                .details
                .verification_uri_complete()
                .map(|u| u.secret().clone()),
            user_code: self.details.user_code().secret().clone(),
            expires_in: self.details.expires_in(),
        }
    }

    /// Polls the token endpoint (honouring `interval` and `slow_down`) until the login is
    /// approved, denied or expired.
    pub async fn wait(&self) -> CliResult<Tokens> {
        let client = self.idp.client();
        let adapter = adapter(&self.idp.http);
        let response = client
            .exchange_device_access_token(&self.details)
            .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?
            .request_async(&adapter, tokio::time::sleep, None)
            .await
            .map_err(|e| match &e {
                RequestTokenError::ServerResponse(r)
                    if *r.error() == DeviceCodeErrorResponseType::AccessDenied =>
                {
                    CliError::new(
                        Exit::NotAuthenticated,
                        "the login was denied at the identity provider",
                    )
                    .hint("run `sluice login` again if that was a mistake")
                }
                RequestTokenError::ServerResponse(r)
                    if *r.error() == DeviceCodeErrorResponseType::ExpiredToken =>
                {
                    CliError::new(
                        Exit::NotAuthenticated,
                        "the code expired before it was approved; run sluice login again",
                    )
                }
                _ => self.idp.refused("waiting for the device login", &e),
            })?;
        tokens(response)
    }
}

fn tokens(response: CoreTokenResponse) -> CliResult<Tokens> {
    let id_token = response.id_token().ok_or_else(|| {
        CliError::new(Exit::Failure, "the identity provider sent no ID token")
            .hint("the broker's scopes for this provider must include openid")
    })?;
    Ok(Tokens {
        id_token: Secret::new(id_token.to_string()),
        refresh_token: response
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone())),
    })
}

/// A transport failure talking to the provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The adapter from `openidconnect`'s `http::Request` to reqwest 0.13 and back.
fn adapter(
    http: &reqwest::Client,
) -> impl Fn(
    HttpRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send>,
> + use<> {
    let http = Arc::new(http.clone());
    move |request: HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| HttpError(crate::client::error_chain(&e)))?;
            let response = http
                .execute(request)
                .await
                .map_err(|e| HttpError(crate::client::error_chain(&e)))?;
            let mut builder =
                openidconnect::http::Response::builder().status(response.status().as_u16());
            for (name, value) in response.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError(crate::client::error_chain(&e)))?;
            builder
                .body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        })
    }
}

fn describe<RE: openidconnect::ErrorResponse + 'static>(
    e: &RequestTokenError<HttpError, RE>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => r.to_string(),
        other => crate::client::error_chain(other),
    }
}

fn unreachable_idp(issuer: &str, e: &dyn std::error::Error) -> CliError {
    CliError::new(
        Exit::BrokerUnreachable,
        format!(
            "cannot use the identity provider at {issuer}: {}",
            crate::client::error_chain(e)
        ),
    )
    .hint("check your network; the provider must be reachable from this machine")
}
