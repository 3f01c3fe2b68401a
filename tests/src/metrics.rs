//! Reading a broker's `GET /metrics` as a scraper would: `curl` with the scrape token.

use crate::Broker;

/// The broker's `/metrics` with `token` (none: no `Authorization`): (status, body).
pub fn scrape(broker: &Broker, token: Option<&str>) -> (u16, String) {
    broker.get("/metrics", token)
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
