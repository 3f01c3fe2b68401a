//! Riding out broker outages in the long-running loops (`approvals --watch`, waiting for an
//! approval): say once that the broker is away, retry with a backoff from 1 s to 10 s, and say
//! when it is back. A broker restart is routine; it must not end a watch that runs for hours.

use crate::exit::CliError;
use std::time::Duration;

/// First delay after a failure.
const FIRST: Duration = Duration::from_secs(1);
/// Longest delay between tries.
const MAX: Duration = Duration::from_secs(10);

/// The state of one loop's connection to the broker.
#[derive(Debug, Default)]
pub struct Retry {
    /// The delay before the next try while the broker is away; `None` while it answers.
    delay: Option<Duration>,
}

impl Retry {
    /// A loop that has not failed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// After a transient failure: says so through `say` at the start of an outage (only then),
    /// and sleeps before the next try.
    pub async fn failed(&mut self, e: &CliError, say: impl Fn(&str)) {
        let delay = self.note_failure(e, say);
        tokio::time::sleep(delay).await;
    }

    /// The bookkeeping of [`Self::failed`]: reports the outage if it is new; the delay to wait.
    fn note_failure(&mut self, e: &CliError, say: impl Fn(&str)) -> Duration {
        if self.delay.is_none() {
            say(&format!(
                "sluice: broker unreachable, retrying… ({})",
                e.message
            ));
        }
        self.next_delay()
    }

    /// After an answer: says the broker is back if it was away.
    pub fn succeeded(&mut self, say: impl Fn(&str)) {
        if self.delay.take().is_some() {
            say("sluice: broker reachable again");
        }
    }

    /// 1 s, 2 s, 4 s, 8 s, then 10 s.
    fn next_delay(&mut self) -> Duration {
        let delay = self.delay.map_or(FIRST, |d| (d * 2).min(MAX));
        self.delay = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use std::cell::RefCell;

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let mut r = Retry::new();
        let delays: Vec<u64> = (0..6).map(|_| r.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn an_outage_is_reported_once_and_its_end_once() {
        let said = RefCell::new(Vec::new());
        let say = |s: &str| said.borrow_mut().push(s.to_string());
        let e = CliError::new(Exit::BrokerUnreachable, "connection refused");
        let mut r = Retry::new();
        r.succeeded(say);
        assert_eq!(r.note_failure(&e, say), FIRST);
        assert_eq!(r.note_failure(&e, say), FIRST * 2);
        r.succeeded(say);
        r.succeeded(say);
        assert_eq!(
            said.into_inner(),
            [
                "sluice: broker unreachable, retrying… (connection refused)",
                "sluice: broker reachable again"
            ]
        );
        // After recovering, the backoff starts again from the beginning.
        assert_eq!(r.next_delay(), FIRST);
    }
}
