//! Reading a broker's `GET /metrics` as a scraper would: `curl` with the scrape token.

use crate::Broker;
use std::process::Command;

/// `curl` of the broker's `/metrics` with `token` (none: no `Authorization`): (status, body).
pub fn scrape(broker: &Broker, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-q",
        "-s",
        "--noproxy",
        "*",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(broker.ca());
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd
        .arg(format!("{}/metrics", broker.url()))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The value of the sample `name{labels}` (exact line prefix) in a scrape, 0 when absent.
pub fn value(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
