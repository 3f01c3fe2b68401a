//! `sluice whoami`: the identity behind the stored session token, as the broker sees it.

use crate::args::{GlobalArgs, Output};
use crate::exit::CliResult;
use sluice_shared::api::WhoAmI;

pub async fn run(global: &GlobalArgs, output: Output) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let token = crate::auth::session::token(&broker).await?;
    let me: WhoAmI = broker.get("/v1/whoami", Some(&token)).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string(&me).unwrap_or_default()),
        Output::Text => {
            println!("subject:    {}", me.subject);
            println!("groups:     {}", super::groups(&me.groups));
            match &me.provider {
                Some(p) => println!("logged in:  {} ({p})", me.auth_method),
                None => println!("logged in:  {} token", me.auth_method),
            }
            for (claim, value) in &me.ci {
                println!("ci {claim:<8} {value}");
            }
            println!("expires:    {}", describe_expiry(me.expires_at));
            println!("broker:     {}", broker.url());
        }
    }
    Ok(crate::exit::Exit::Ok as u8)
}

/// "in 59m" / "3m ago", from seconds since the epoch.
pub fn describe_expiry(expires_at: u64) -> String {
    crate::format::relative(expires_at, crate::format::now())
}
