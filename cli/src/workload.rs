//! Workload identity for CI jobs and agents: the identity token the platform already gives the
//! job, fetched or read without any human step.
//!
//! | source | where the token comes from |
//! |---|---|
//! | `github` | GitHub Actions' OIDC endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, job permission `id-token: write`), requested for the broker's audience |
//! | `gitlab` | the `SLUICE_ID_TOKEN` variable, declared in the job's `id_tokens:` with the broker's audience |
//! | `kubernetes` | a projected service-account token file, `/var/run/secrets/sluice/token` by default (`SLUICE_K8S_TOKEN_FILE` overrides) |
//! | `file:PATH` | any file holding a JWT |
//! | `env:VAR` | any environment variable holding a JWT |

use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use sluice_shared::Secret;
use sluice_shared::api::{AuthConfig, ExchangeRequest, ExchangeResponse, TokenKind};
use std::path::PathBuf;
use std::str::FromStr;

/// Default path of a projected Kubernetes service-account token for Sluice.
const KUBERNETES_TOKEN_FILE: &str = "/var/run/secrets/sluice/token";

/// Where a workload's identity token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// GitHub Actions' OIDC token endpoint.
    Github,
    /// GitLab CI's `id_tokens` variable `SLUICE_ID_TOKEN`.
    Gitlab,
    /// A projected Kubernetes service-account token.
    Kubernetes,
    /// A file holding the token.
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(Self::Github),
            "gitlab" => Ok(Self::Gitlab),
            "kubernetes" | "k8s" => Ok(Self::Kubernetes),
            _ => {
                if let Some(path) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
                    Ok(Self::File(PathBuf::from(path)))
                } else if let Some(var) = s.strip_prefix("env:").filter(|v| !v.is_empty()) {
                    Ok(Self::Env(var.to_string()))
                } else {
                    Err(format!(
                        "'{s}' is not a workload source: use github, gitlab, kubernetes, file:PATH or env:VAR"
                    ))
                }
            }
        }
    }
}

impl Source {
    /// The broker preset whose audience this source should request, if any.
    pub fn preset(&self) -> Option<&'static str> {
        match self {
            Self::Github => Some("github"),
            Self::Gitlab => Some("gitlab"),
            Self::Kubernetes => Some("kubernetes"),
            Self::File(_) | Self::Env(_) => None,
        }
    }

    /// Reads or fetches the platform token. `audience` is needed only for GitHub, which mints
    /// a token per request.
    pub async fn token(&self, audience: Option<&str>) -> CliResult<Secret<String>> {
        let raw = match self {
            Self::Github => github(audience).await?,
            Self::Gitlab => env("SLUICE_ID_TOKEN").map_err(|e| {
                e.hint("declare it in the job: id_tokens: { SLUICE_ID_TOKEN: { aud: <the broker's audience> } }")
            })?,
            Self::Kubernetes => {
                let path = std::env::var_os("SLUICE_K8S_TOKEN_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(KUBERNETES_TOKEN_FILE));
                file(&path).map_err(|e| {
                    e.hint("mount a projected service-account token with the broker's audience there, or set SLUICE_K8S_TOKEN_FILE")
                })?
            }
            Self::File(path) => file(path)?,
            Self::Env(var) => env(var)?,
        };
        let token = raw.trim().to_string();
        if token.split('.').count() != 3 {
            return Err(
                CliError::new(Exit::Usage, "the workload identity token is not a JWT")
                    .hint("check the token source"),
            );
        }
        Ok(Secret::new(token))
    }
}

/// Gets the platform token and exchanges it at the broker for a session token.
pub async fn login(
    broker: &Broker,
    source: &Source,
    audience: Option<&str>,
) -> CliResult<ExchangeResponse> {
    let audience = match audience {
        Some(a) => Some(a.to_string()),
        None => default_audience(broker, source).await?,
    };
    let token = source.token(audience.as_deref()).await?;
    broker
        .post_json(
            "/v1/auth/token",
            &ExchangeRequest {
                kind: TokenKind::Workload,
                token: token.expose().clone(),
            },
        )
        .await
}

/// The audience of the broker's rule for this platform, when it is unambiguous.
async fn default_audience(broker: &Broker, source: &Source) -> CliResult<Option<String>> {
    let config: AuthConfig = broker.get("/v1/auth/config", None).await?;
    let mut audiences: Vec<String> = config
        .workload
        .iter()
        .filter(|w| source.preset().is_none() || w.preset.as_deref() == source.preset())
        .map(|w| w.audience.clone())
        .collect();
    audiences.sort();
    audiences.dedup();
    match (audiences.len(), source) {
        (1, _) => Ok(audiences.pop()),
        // Only GitHub mints tokens per audience; the other sources already hold one.
        (_, Source::Github) => Err(CliError::new(
            Exit::Usage,
            if audiences.is_empty() {
                "the broker trusts no GitHub Actions workload rule".to_string()
            } else {
                format!(
                    "the broker has several GitHub audiences ({})",
                    audiences.join(", ")
                )
            },
        )
        .hint("pass --audience")),
        _ => Ok(None),
    }
}

fn env(var: &str) -> CliResult<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(CliError::new(
            Exit::Usage,
            format!("the environment variable {var} holds no identity token"),
        )),
    }
}

fn file(path: &std::path::Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Usage,
            format!(
                "cannot read the identity token file {}: {e}",
                path.display()
            ),
        )
    })
}

/// GitHub Actions: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD` with the request token.
async fn github(audience: Option<&str>) -> CliResult<String> {
    let missing = || {
        CliError::new(
            Exit::Usage,
            "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set",
        )
        .hint("run inside GitHub Actions with `permissions: id-token: write`")
    };
    let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").map_err(|_| missing())?;
    let request_token = std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").map_err(|_| missing())?;
    let mut url = reqwest::Url::parse(&url).map_err(|e| {
        CliError::new(
            Exit::Usage,
            format!("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL: {e}"),
        )
    })?;
    if let Some(aud) = audience {
        url.query_pairs_mut().append_pair("audience", aud);
    }
    let unreachable = |e: String| {
        CliError::new(
            Exit::BrokerUnreachable,
            format!("cannot get an identity token from GitHub Actions: {e}"),
        )
    };
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(request_token)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(unreachable(format!("HTTP {}", resp.status())));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| unreachable(e.to_string()))?;
    body.get("value")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| unreachable("the answer has no `value`".into()))
}

#[cfg(test)]
mod tests {
    use super::Source;
    use std::path::PathBuf;

    #[test]
    fn sources_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!("github".parse(), Ok(Source::Github));
        assert_eq!("gitlab".parse(), Ok(Source::Gitlab));
        assert_eq!("kubernetes".parse(), Ok(Source::Kubernetes));
        assert_eq!(
            "file:/tmp/t".parse(),
            Ok(Source::File(PathBuf::from("/tmp/t")))
        );
        assert_eq!("env:TOKEN".parse(), Ok(Source::Env("TOKEN".into())));
        for bad in ["", "file:", "env:", "circleci"] {
            let err = bad.parse::<Source>().unwrap_err();
            assert!(
                err.contains("github, gitlab, kubernetes, file:PATH or env:VAR"),
                "{err}"
            );
        }
    }
}
