//! The MCP tools: names, argument and result schemas, and descriptions written for a model.
//!
//! Each tool is a thin layer over [`Access`]: check the arguments, call the broker, bound the
//! result. Failures are tool errors (`isError`) with a message that says what to do next;
//! malformed arguments are too, so a model can correct itself and the server keeps serving.

use super::access::{Access, Failure};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    ProgressNotificationParam, ProgressToken, RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Json, Peer, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_shared::grants::{Grant, GrantState};
use std::sync::Arc;
use std::time::Duration;

/// Longest SQL text a query may carry.
const MAX_SQL: usize = 64 * 1024;
/// How long `wait_for_access` waits by default, and at most.
const DEFAULT_WAIT: u64 = 300;
const MAX_WAIT: u64 = 3600;
/// How often a long call reports that it is still waiting.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// What the agent sees first: how to use the tools together.
const INSTRUCTIONS: &str = "Sluice gives governed, just-in-time access to databases, SSH hosts, \
Kubernetes clusters and HTTP services. You never receive credentials. Start with \
list_resources, then request_access (resource, role, reason); if the grant is pending a human \
must approve it: call wait_for_access. Then use query/describe (postgres), exec (ssh), kube \
(kubernetes) or http (http). Every statement is checked by policy: a refused one names the \
rule that refused it; a held one waits for a human approver. Values may be masked. Call \
revoke_access when your task is done.";

/// The tool server: one per MCP connection (stdio) or per HTTP session.
#[derive(Clone)]
pub struct Tools {
    access: Arc<Access>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourcesResult {
    /// Resources you may request a role on.
    pub resources: Vec<ResourceEntry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourceEntry {
    /// Name to pass to the other tools.
    pub name: String,
    /// postgres, ssh, kubernetes, http or tcp.
    pub kind: String,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The tools that work on it.
    pub tools: Vec<String>,
    /// Roles you may request, your default first.
    pub roles: Vec<RoleEntry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RoleEntry {
    /// Role name for request_access.
    pub name: String,
    /// Longest grant, seconds.
    pub max_ttl_secs: u64,
    /// Groups whose members must approve a request; absent when it is granted at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RequestArgs {
    /// The resource name (from list_resources).
    pub resource: String,
    /// The role to ask for; your default role on the resource when left out.
    #[serde(default)]
    pub role: Option<String>,
    /// How long the access should last, in minutes; capped at the role's maximum.
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    /// Why you need it, for the human approver and the audit trail (required).
    pub reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AccessResult {
    /// The grant id (g_…), for wait_for_access and revoke_access.
    pub grant_id: String,
    /// pending, active, denied, expired or revoked.
    pub state: String,
    pub resource: String,
    pub role: String,
    /// Lifetime once active, seconds.
    pub ttl_secs: u64,
    /// When an active grant ends, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Who must approve a pending grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
    /// What to do next.
    pub next: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArgs {
    /// The grant id request_access returned.
    pub grant_id: String,
    /// How long to wait at most, in seconds (default 300, at most 3600). The grant stays
    /// pending if nobody decides by then; call again to keep waiting.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryArgs {
    /// A postgres resource you hold an active grant on.
    pub resource: String,
    /// One SQL statement.
    pub sql: String,
    /// Most rows to return (default and maximum set by the server, usually 200).
    #[serde(default)]
    pub max_rows: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows as text, null for SQL NULL; masked values arrive masked.
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows (or bytes) existed than were returned.
    pub truncated: bool,
    /// PostgreSQL's command tag, e.g. "SELECT 3" or "UPDATE 1".
    pub command: String,
    /// Notices from Sluice or the database (approvals, warnings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DescribeArgs {
    /// A postgres resource you hold an active grant on.
    pub resource: String,
    /// Only this schema.
    #[serde(default)]
    pub schema: Option<String>,
    /// Only this table (or view).
    #[serde(default)]
    pub table: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DescribeResult {
    pub tables: Vec<TableEntry>,
    /// More tables or columns existed than were returned.
    pub truncated: bool,
    /// How to read the masked markers.
    pub note: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TableEntry {
    pub schema: String,
    pub table: String,
    pub columns: Vec<ColumnEntry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ColumnEntry {
    pub name: String,
    /// The SQL type.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The masking rule that rewrites this column's values for you, if one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_by: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HttpArgs {
    /// An http resource you hold an active grant on.
    pub resource: String,
    /// GET, POST, PUT, PATCH, DELETE, HEAD.
    pub method: String,
    /// The path and query, starting with '/', relative to the service.
    pub path: String,
    /// Request headers (not Authorization: the broker adds the service's credential).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The request body (JSON or text).
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HttpResult {
    pub status: u16,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The response body, masked by policy; cut at the byte limit.
    pub body: String,
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExecArgs {
    /// An ssh resource you hold an active grant on.
    pub resource: String,
    /// The command line to run on the host, e.g. "uptime" or "systemctl status nginx".
    pub command: String,
    /// A login on the host other than the resource's own, if your role allows it.
    #[serde(default)]
    pub login: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct KubeArgs {
    /// A kubernetes resource you hold an active grant on.
    pub resource: String,
    /// kubectl arguments, e.g. ["get", "pods", "-n", "prod", "-o", "json"]. Use either this
    /// or verb/kind.
    #[serde(default)]
    pub argv: Vec<String>,
    /// get, list, describe, delete, ... (with kind).
    #[serde(default)]
    pub verb: Option<String>,
    /// The resource type: pods, deployments, secrets, ...
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CommandResult {
    /// The command's exit code (non-zero when it failed or was refused).
    pub exit_code: i32,
    pub stdout: String,
    /// Error output: a refusal names the rule that refused.
    pub stderr: String,
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RevokeArgs {
    /// The resource whose grant to end, or a grant id (g_…).
    pub resource: String,
}

/// Sends progress notifications for one call, when the client asked for them.
struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    step: f64,
}

impl Progress {
    fn new(meta: &RequestMetaObject, peer: Peer<RoleServer>) -> Self {
        Self {
            peer,
            token: meta.get_progress_token(),
            step: 0.0,
        }
    }

    async fn say(&mut self, message: &str) {
        let Some(token) = &self.token else { return };
        self.step += 1.0;
        let _ = self
            .peer
            .notify_progress(
                ProgressNotificationParam::new(token.clone(), self.step).with_message(message),
            )
            .await;
    }
}

#[tool_router]
impl Tools {
    pub fn new(access: Arc<Access>) -> Self {
        Self {
            access,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the resources (databases, SSH hosts, Kubernetes clusters, HTTP services) you may request access to, with the roles you may ask for on each, how long a grant may last and who must approve it."
    )]
    async fn list_resources(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<Json<ResourcesResult>, Failure> {
        let list = self.access.resources().await?;
        Ok(Json(ResourcesResult {
            resources: list
                .resources
                .into_iter()
                .map(|r| ResourceEntry {
                    tools: tools_for(r.kind.as_str()),
                    kind: r.kind.as_str().to_owned(),
                    name: r.name,
                    description: r.description,
                    roles: r
                        .roles
                        .into_iter()
                        .map(|role| RoleEntry {
                            name: role.name,
                            max_ttl_secs: role.max_ttl_secs,
                            approvers: role.approvers,
                            description: role.description,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    #[tool(
        description = "Ask for just-in-time access to a resource: a role for a limited time, with a reason a human approver reads. Returns at once: state 'active' means you can use the resource now; 'pending' means a human must approve it first (call wait_for_access with the grant_id)."
    )]
    async fn request_access(
        &self,
        Parameters(args): Parameters<RequestArgs>,
    ) -> Result<Json<AccessResult>, Failure> {
        let reason = args.reason.trim();
        if reason.is_empty() {
            return Err("give a reason: the approver and the audit trail read it".into());
        }
        let ttl = args.ttl_minutes.map(|m| u64::from(m) * 60);
        let (grant, _) = self
            .access
            .request(&args.resource, args.role, ttl, reason.to_owned())
            .await?;
        Ok(Json(access_result(&grant)))
    }

    #[tool(
        description = "Wait for a human to decide a pending access request. Sends progress notifications while waiting. Returns the grant's state: active (go ahead), denied or expired (with the reason), or still pending when timeout_secs ran out (call again to keep waiting)."
    )]
    async fn wait_for_access(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<AccessResult>, Failure> {
        let mut progress = Progress::new(&meta, peer);
        let limit = args.timeout_secs.unwrap_or(DEFAULT_WAIT).clamp(1, MAX_WAIT);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(limit);
        let mut votes = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = left.as_secs().min(10);
            let grant = self.access.poll(&args.grant_id, wait, votes).await?;
            votes = grant.votes.len();
            if grant.state != GrantState::Pending || wait == 0 {
                return Ok(Json(access_result(&grant)));
            }
            let who = grant
                .approval
                .as_ref()
                .map(|a| a.groups.join(" or "))
                .unwrap_or_else(|| "an approver".into());
            progress
                .say(&format!(
                    "grant {} is waiting for approval by {who}",
                    grant.id
                ))
                .await;
        }
    }

    #[tool(
        description = "Run one SQL statement on a postgres resource (you need an active grant). Returns columns and rows (sensitive values arrive masked), or the command tag. A statement policy refuses comes back as an error naming the rule; a statement held for approval waits for a human (progress notifications say who) and then runs or is refused."
    )]
    async fn query(
        &self,
        Parameters(args): Parameters<QueryArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<QueryResult>, Failure> {
        if args.sql.trim().is_empty() {
            return Err("the sql is empty".into());
        }
        if args.sql.len() > MAX_SQL {
            return Err(format!(
                "the sql is {} bytes; at most {MAX_SQL} are accepted in one statement",
                args.sql.len()
            ));
        }
        let limit = args
            .max_rows
            .map(|n| n as usize)
            .unwrap_or(self.access.limits.rows)
            .clamp(1, self.access.limits.rows);
        let mut progress = Progress::new(&meta, peer);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let run = self
            .access
            .query(&args.resource, &args.sql, limit, |notice| {
                let _ = tx.send(notice.to_owned());
            });
        tokio::pin!(run);
        let mut last = String::from("the statement is running");
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome?,
                Some(notice) = rx.recv() => {
                    progress.say(&notice).await;
                    last = notice;
                }
                _ = beat.tick() => progress.say(&format!("still waiting: {last}")).await,
            }
        };
        if let Some(error) = outcome.error {
            return Err(format!("{error}"));
        }
        let (rows, cut) = bound_rows(outcome.rows, self.access.limits.bytes);
        Ok(Json(QueryResult {
            columns: outcome.columns,
            rows,
            truncated: outcome.truncated || cut,
            command: outcome.tag,
            notices: outcome.notices,
        }))
    }

    #[tool(
        description = "List the tables and columns of a postgres resource (you need an active grant), optionally for one schema or table, and which columns policy masks for you."
    )]
    async fn describe(
        &self,
        Parameters(args): Parameters<DescribeArgs>,
    ) -> Result<Json<DescribeResult>, Failure> {
        super::describe::run(&self.access, args).await.map(Json)
    }

    #[tool(
        description = "Send one HTTP request to an http resource (you need an active grant). The broker adds the service's credential and applies policy: a refused request returns status 403 with the rule in the body; sensitive fields in JSON answers arrive masked."
    )]
    async fn http(
        &self,
        Parameters(args): Parameters<HttpArgs>,
    ) -> Result<Json<HttpResult>, Failure> {
        let headers: Vec<(String, String)> = args.headers.into_iter().collect();
        let answer = self
            .access
            .http(
                &args.resource,
                &args.method,
                &args.path,
                &headers,
                args.body,
            )
            .await?;
        Ok(Json(HttpResult {
            status: answer.status,
            reason: answer.reason,
            content_type: answer.content_type,
            body: answer.body,
            truncated: answer.truncated,
        }))
    }

    #[tool(
        description = "Run one command on an ssh resource (you need an active grant) and return its exit code and output. Policy decides each command: a refused one fails naming the rule; a held one waits for a human approver (progress notifications)."
    )]
    async fn exec(
        &self,
        Parameters(args): Parameters<ExecArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<CommandResult>, Failure> {
        if args.command.trim().is_empty() {
            return Err("the command is empty".into());
        }
        let grant = self.access.active(&args.resource).await?;
        let target = match &args.login {
            Some(login) => format!("{login}@{}", args.resource),
            None => args.resource.clone(),
        };
        let argv = vec![
            "ssh".to_owned(),
            target,
            "--role".to_owned(),
            grant.role.clone(),
            "--".to_owned(),
            args.command,
        ];
        self.run_child(argv, meta, peer).await
    }

    #[tool(
        description = "Call the Kubernetes API of a kubernetes resource (you need an active grant) as kubectl would: give argv (kubectl arguments) or verb + kind [+ namespace, name]. Policy decides each request: refused ones fail with Forbidden naming the rule; Secret values arrive masked; a held request waits for a human approver."
    )]
    async fn kube(
        &self,
        Parameters(args): Parameters<KubeArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<CommandResult>, Failure> {
        let grant = self.access.active(&args.resource).await?;
        let mut kubectl = if args.argv.is_empty() {
            let (Some(verb), Some(kind)) = (args.verb, args.kind) else {
                return Err("give argv (kubectl arguments) or verb and kind".into());
            };
            let mut argv = vec![verb, kind];
            argv.extend(args.name);
            argv
        } else {
            args.argv
        };
        if let Some(namespace) = args.namespace {
            kubectl.extend(["-n".to_owned(), namespace]);
        }
        if let Some(bad) = kubectl.iter().find(|a| {
            let a = a.as_str();
            a.starts_with("--kubeconfig")
                || a.starts_with("--token")
                || a.starts_with("--server")
                || a.starts_with("--as")
                || a == "-s"
        }) {
            return Err(format!(
                "'{bad}' is not accepted: Sluice sets the cluster, the credential and the \
                 identity"
            ));
        }
        let mut argv = vec![
            "kube".to_owned(),
            args.resource.clone(),
            "--role".to_owned(),
            grant.role.clone(),
            "--".to_owned(),
        ];
        argv.extend(kubectl);
        self.run_child(argv, meta, peer).await
    }

    #[tool(
        description = "End your access to a resource when your task is done (give the resource name or the grant id). Open sessions on it end too."
    )]
    async fn revoke_access(
        &self,
        Parameters(args): Parameters<RevokeArgs>,
    ) -> Result<Json<AccessResult>, Failure> {
        let id = self.access.grant_id(&args.resource).ok_or_else(|| {
            format!(
                "this server holds no grant on '{}'; give the grant id (g_…) instead",
                args.resource
            )
        })?;
        let grant = self.access.revoke(&id).await?;
        Ok(Json(access_result(&grant)))
    }
}

impl Tools {
    async fn run_child(
        &self,
        argv: Vec<String>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<CommandResult>, Failure> {
        let mut progress = Progress::new(&meta, peer);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let run = self.access.child(&argv, |line| {
            let _ = tx.send(line.to_owned());
        });
        tokio::pin!(run);
        let output = loop {
            tokio::select! {
                output = &mut run => break output?,
                Some(line) = rx.recv() => progress.say(&line).await,
            }
        };
        Ok(Json(CommandResult {
            exit_code: output.exit_code,
            stdout: output.stdout,
            stderr: output.stderr,
            truncated: output.truncated,
        }))
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new(
                "sluice",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(info) = context.peer.peer_info() {
            let label = super::client_label(&info.client_info.name, &info.client_info.version);
            *self.access.client.lock().unwrap_or_else(|p| p.into_inner()) = label;
        }
        let tool = request.name.to_string();
        let resource = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("resource"))
            .and_then(|r| r.as_str())
            .map(str::to_owned);
        let context = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let answer = match self.tool_router.call(context).await {
            // Arguments that do not fit the schema: a tool error the model can correct.
            Err(e) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
                Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "the arguments do not fit the {tool} tool: {}",
                    e.message
                ))])
                .into())
            }
            other => other,
        };
        let outcome = match &answer {
            Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => "error",
            Ok(_) => "ok",
            Err(_) => "protocol-error",
        };
        super::report(&self.access, &tool, resource.as_deref(), outcome).await;
        answer
    }
}

/// The tools that work on a resource kind.
fn tools_for(kind: &str) -> Vec<String> {
    let tools: &[&str] = match kind {
        "postgres" => &["query", "describe"],
        "ssh" => &["exec"],
        "kubernetes" => &["kube"],
        "http" => &["http"],
        _ => &[],
    };
    tools.iter().map(|t| (*t).to_owned()).collect()
}

fn access_result(grant: &Grant) -> AccessResult {
    let next = match grant.state {
        GrantState::Active => format!(
            "use the tool for its kind (list_resources says which) with resource '{}'; call \
             revoke_access when done",
            grant.resource
        ),
        GrantState::Pending => format!(
            "a human must approve it: call wait_for_access with grant_id '{}'",
            grant.id
        ),
        GrantState::Denied => format!(
            "denied{}; do not retry with the same request",
            grant
                .end_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        _ => "this grant has ended; call request_access for a new one".into(),
    };
    AccessResult {
        grant_id: grant.id.clone(),
        state: grant.state.as_str().to_owned(),
        resource: grant.resource.clone(),
        role: grant.role.clone(),
        ttl_secs: grant.ttl_secs,
        expires_at: grant.expires_at,
        approvers: grant
            .approval
            .as_ref()
            .filter(|_| grant.state == GrantState::Pending)
            .map(|a| a.groups.clone()),
        next,
    }
}

/// Keeps whole rows while their JSON stays within `bytes`; whether rows were cut.
fn bound_rows(rows: Vec<Vec<Option<String>>>, bytes: usize) -> (Vec<Vec<Option<String>>>, bool) {
    let mut used = 0;
    let mut kept = Vec::with_capacity(rows.len());
    let total = rows.len();
    for row in rows {
        let size: usize = row
            .iter()
            .map(|v| v.as_ref().map_or(4, |s| s.len() + 3))
            .sum::<usize>()
            + 2;
        if used + size > bytes {
            break;
        }
        used += size;
        kept.push(row);
    }
    let cut = kept.len() < total;
    (kept, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_whole_at_the_byte_limit() {
        let rows: Vec<Vec<Option<String>>> = (0..100)
            .map(|i| vec![Some(format!("row-{i:04}")), None])
            .collect();
        let (kept, cut) = bound_rows(rows.clone(), 200);
        assert!(cut);
        assert!(!kept.is_empty() && kept.len() < 100);
        assert_eq!(kept[..], rows[..kept.len()]);
        let (all, cut) = bound_rows(rows, 1 << 20);
        assert_eq!((all.len(), cut), (100, false));
    }
}
