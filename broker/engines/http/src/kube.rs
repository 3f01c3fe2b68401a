//! Kubernetes requests: [`request`] reads the attributes a request acts on (verb, resource,
//! namespace, name) exactly as the API server's authorizer sees them, and [`rules`] decides
//! them.

pub mod request;
pub mod rules;

pub use request::{Attributes, attributes, suspicious};
pub use rules::{Decision, KubeRule, KubeRules, forbidden_status};
