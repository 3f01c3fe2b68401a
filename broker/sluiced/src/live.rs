//! The configuration the broker runs on now. `serve` starts it; a reload (SIGHUP, `sluiced
//! reload`) replaces it; every reader takes the current snapshot per request, and open sessions
//! subscribe to hear of each change (linkerd's model: a connection watches its policy).

use sluice_config::Config;
use std::sync::Arc;
use tokio::sync::watch;

/// A reader of the current configuration; cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveConfig(watch::Receiver<Arc<Config>>);

impl LiveConfig {
    /// A fixed configuration (start-up, tools, tests) and the sender that replaces it.
    pub fn new(config: Arc<Config>) -> (watch::Sender<Arc<Config>>, Self) {
        let (tx, rx) = watch::channel(config);
        (tx, Self(rx))
    }

    /// The configuration now.
    pub fn current(&self) -> Arc<Config> {
        Arc::clone(&self.0.borrow())
    }

    /// A receiver whose `changed()` resolves at each reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        let mut rx = self.0.clone();
        rx.mark_unchanged();
        rx
    }
}
