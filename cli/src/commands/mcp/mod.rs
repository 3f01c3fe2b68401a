//! `sluice mcp`: Sluice as MCP tools for AI agents, over stdio or streamable HTTP.
//!
//! ```text
//!  agent (MCP client) ──stdio / HTTP──▶ sluice mcp ──HTTPS──▶ sluiced API (grants, approvals)
//!                                            └──TLS tunnel──▶ engine (postgres, ssh, kube, http)
//! ```
//!
//! The server runs as whoever is logged in (or `--workload`), but asks the broker first for a
//! token of its own (`POST /v1/auth/agent`) that says sessions come through MCP and names the
//! client: policy can treat agents differently, and session lists show which agent it was.
//! Every tool call is reported to the broker's audit trail (tool, resource, outcome; never
//! values). Credentials and tunnel secrets stay in this process.

mod access;
mod describe;
mod pg;
mod tools;

use crate::args::{GlobalArgs, McpArgs};
use crate::auth::session::{AgentToken, TokenSource};
use crate::exit::{CliError, CliResult, Exit};
use access::{Access, Limits};
use rmcp::ServiceExt as _;
use sluice_shared::api::ToolCallReport;
use std::sync::Arc;

/// How long reporting a tool call to the audit trail may delay its answer.
const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(global: &GlobalArgs, args: McpArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens =
        super::connect::token_source(&broker, args.workload.as_ref(), args.audience.as_deref())
            .await?;
    // The tools present an agent token of their own; asking for it now fails at start, not
    // at the agent's first call, when nobody is logged in.
    let tokens = TokenSource::Agent(Arc::new(AgentToken::new(tokens)));
    tokens.get(&broker).await?;
    let mut pass = Vec::new();
    pass.extend(["--broker".to_owned(), broker.url().to_owned()]);
    if let Some(ca) = &global.ca {
        pass.extend(["--ca".to_owned(), ca.display().to_string()]);
    }
    let limits = Limits {
        rows: args.max_rows as usize,
        bytes: args.max_bytes as usize,
    };
    let access = Arc::new(Access::new(broker, tokens, pass, limits));
    match args.listen {
        None => {
            let service = tools::Tools::new(Arc::clone(&access))
                .serve(rmcp::transport::stdio())
                .await
                .map_err(|e| CliError::new(Exit::Failure, format!("MCP start failed: {e}")))?;
            service
                .waiting()
                .await
                .map_err(|e| CliError::new(Exit::Failure, format!("MCP server failed: {e}")))?;
            Ok(Exit::Ok as u8)
        }
        Some(addr) => serve_http(access, addr).await,
    }
}

/// Streamable HTTP at `http://ADDR/mcp`, one tool server per MCP session.
async fn serve_http(access: Arc<Access>, addr: std::net::SocketAddr) -> CliResult<u8> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let service = StreamableHttpService::new(
        move || Ok(tools::Tools::new(Arc::clone(&access))),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::new(Exit::Failure, format!("cannot listen on {addr}: {e}"))
            .hint("choose another --listen port")
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    eprintln!("sluice: MCP server at http://{local}/mcp (streamable HTTP); Ctrl-C stops it");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::new(Exit::Failure, format!("the MCP server failed: {e}")))?;
    Ok(Exit::Ok as u8)
}

/// `mcp NAME VERSION`, printable and short: it goes into session lists.
pub fn client_label(name: &str, version: &str) -> String {
    let clean: String = format!("mcp {name} {version}")
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(80)
        .collect();
    clean.trim().to_owned()
}

/// Reports one tool call to the broker's audit trail; a failure to report is said on stderr
/// and does not fail the call (the broker audits every session and statement itself).
async fn report(access: &Access, tool: &str, resource: Option<&str>, outcome: &str) {
    let report = ToolCallReport {
        tool: tool.chars().take(64).collect(),
        resource: resource.map(|r| r.chars().take(128).collect()),
        outcome: outcome.to_owned(),
    };
    let send = async {
        let token = access.tokens.get(&access.broker).await?;
        access
            .broker
            .post::<_, serde_json::Value>("/v1/agents/tool-calls", &token, &report)
            .await
    };
    match tokio::time::timeout(REPORT_TIMEOUT, send).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("sluice: could not audit the {tool} call: {}", e.line()),
        Err(_) => eprintln!("sluice: could not audit the {tool} call: the broker did not answer"),
    }
}
