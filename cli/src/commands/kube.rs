//! `sluice config kube RES` and the exec credential plugin it installs,
//! `sluice kube-credential RES`: plain `kubectl --context RES` against the broker's own
//! Kubernetes endpoint (`https://BROKER/v1/kube/RES`), under a grant the plugin reuses or asks
//! for. The kubeconfig holds the broker's URL and CA and the command to run; no token, and never
//! the cluster's credential.

use super::connect::{check, require_kind, token_source};
use super::grant;
use crate::args::{ConfigKubeArgs, GlobalArgs, KubeCredentialArgs};
use crate::exit::{CliError, CliResult, Exit};
use crate::format::clean;
use sluice_shared::api::ResourceKind;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ExecCredential API version written into kubeconfigs.
const EXEC_API: &str = "client.authentication.k8s.io/v1";
/// How long kubectl may reuse a credential before asking the plugin again (a fresh session
/// token and grant check every few minutes).
const CREDENTIAL_LIFETIME: u64 = 5 * 60;

/// `sluice config kube RES`: a cluster, a user (the exec plugin) and a context, written with
/// `kubectl config` so the rest of the file is left as it is.
pub async fn config(global: &GlobalArgs, args: ConfigKubeArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, None, None).await?;
    let found = check(&broker, &tokens, &args.resource).await?;
    require_kind(&found, ResourceKind::Kubernetes)?;
    let stored = crate::profile::load()?;
    let ca = global.ca.clone().or(stored.ca);
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot find this program: {e}")))?;
    let name = format!("sluice-{}", args.resource);
    let context = args
        .context
        .clone()
        .unwrap_or_else(|| args.resource.clone());
    let server = format!(
        "{}/v1/kube/{}",
        broker.url().trim_end_matches('/'),
        super::encode_segment(&args.resource)
    );

    let mut cluster = vec![
        "config".to_owned(),
        "set-cluster".to_owned(),
        name.clone(),
        format!("--server={server}"),
    ];
    if let Some(ca) = &ca {
        cluster.push(format!("--certificate-authority={}", ca.display()));
        cluster.push("--embed-certs=true".to_owned());
    }
    let mut user = vec![
        "config".to_owned(),
        "set-credentials".to_owned(),
        name.clone(),
        format!("--exec-api-version={EXEC_API}"),
        // The plugin never reads stdin (a grant that needs approval is waited for).
        "--exec-interactive-mode=Never".to_owned(),
        format!("--exec-command={}", exe.display()),
        // The plugin finds the same broker (and CA) whatever the user's environment.
        format!("--exec-arg=--broker={}", broker.url()),
    ];
    if let Some(ca) = &ca {
        user.push(format!("--exec-arg=--ca={}", ca.display()));
    }
    user.push("--exec-arg=kube-credential".to_owned());
    user.push(format!("--exec-arg={}", args.resource));
    if let Some(role) = &args.role {
        user.push(format!("--exec-arg=--role={role}"));
    }
    let mut set_context = vec![
        "config".to_owned(),
        "set-context".to_owned(),
        context.clone(),
        format!("--cluster={name}"),
        format!("--user={name}"),
    ];
    if let Some(namespace) = &args.namespace {
        set_context.push(format!("--namespace={namespace}"));
    }
    for mut step in [cluster, user, set_context] {
        if let Some(file) = &args.kubeconfig {
            step.push(format!("--kubeconfig={}", file.display()));
        }
        let out = Command::new(&args.kubectl)
            .args(&step)
            .output()
            .map_err(|e| {
                CliError::new(Exit::Failure, format!("cannot run {}: {e}", args.kubectl))
                    .hint("install kubectl, or name it with --kubectl")
            })?;
        if !out.status.success() {
            return Err(CliError::new(
                Exit::Failure,
                format!(
                    "`{} {}` failed: {}",
                    args.kubectl,
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
    }
    eprintln!(
        "Context {} written{}: `kubectl --context {}` now reaches {} through the broker, under \
         your grant (asked for when you hold none).",
        clean(&context),
        args.kubeconfig
            .as_ref()
            .map(|f| format!(" to {}", f.display()))
            .unwrap_or_default(),
        clean(&context),
        clean(&args.resource)
    );
    Ok(Exit::Ok as u8)
}

/// `sluice kube-credential RES`: the ExecCredential kubectl sends as its bearer token: the
/// grant's id and the (renewed) session token, for the broker's endpoint only.
pub async fn credential(global: &GlobalArgs, args: KubeCredentialArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, None, None).await?;
    let found = check(&broker, &tokens, &args.resource).await?;
    require_kind(&found, ResourceKind::Kubernetes)?;
    let grant = grant::reuse_or_ask(&broker, &tokens, &found, &args.grant, "kubectl").await?;
    let token = tokens.get(&broker).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut expires = now + CREDENTIAL_LIFETIME;
    if let Some(end) = grant.expires_at {
        expires = expires.min(end);
    }
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires));
    // Answer in the version kubectl asked for (it says so in KUBERNETES_EXEC_INFO).
    let api_version = std::env::var("KUBERNETES_EXEC_INFO")
        .ok()
        .and_then(|info| serde_json::from_str::<serde_json::Value>(&info).ok())
        .and_then(|info| info["apiVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| EXEC_API.to_owned());
    let credential = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": format!("{}.{}", grant.id, token.expose()),
            "expirationTimestamp": at.to_string(),
        }
    });
    println!("{credential}");
    Ok(Exit::Ok as u8)
}
