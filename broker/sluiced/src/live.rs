//! The configuration the broker runs on now, with every role's compiled plan. `serve` starts
//! it; a reload (SIGHUP, `sluiced reload`) replaces both at once; every reader takes the current
//! snapshot per request, and open sessions subscribe to hear of each change (linkerd's model: a
//! connection watches its policy).

use crate::plan::Plans;
use anyhow::Result;
use sluice_config::Config;
use std::sync::Arc;
use tokio::sync::watch;

/// One configuration and the plans compiled from it: readers never see one without the other.
#[derive(Debug)]
pub struct Snapshot {
    /// The configuration.
    pub config: Arc<Config>,
    /// Every role's plan under it.
    pub plans: Plans,
}

impl Snapshot {
    /// Compiles the plans of `config`.
    pub fn compile(config: Arc<Config>) -> Result<Self> {
        let plans = Plans::compile(&config)?;
        Ok(Self { config, plans })
    }
}

/// A reader of the current configuration; cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveConfig(watch::Receiver<Arc<Snapshot>>);

impl LiveConfig {
    /// A configuration in force (start-up, tools, tests) and the sender that replaces it.
    pub fn new(config: Arc<Config>) -> Result<(watch::Sender<Arc<Snapshot>>, Self)> {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::compile(config)?));
        Ok((tx, Self(rx)))
    }

    /// The configuration now.
    pub fn current(&self) -> Arc<Config> {
        Arc::clone(&self.0.borrow().config)
    }

    /// The configuration and plans now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.0.borrow())
    }

    /// A receiver whose `changed()` resolves at each reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        let mut rx = self.0.clone();
        rx.mark_unchanged();
        rx
    }
}
