//! The HTTP/Kubernetes engine's pure parts: no sockets, no async, only values in and values out.
//!
//! ```text
//!  method, path, query ──kube::attributes──▶ Attributes ──KubeRules::judge──▶ Allow | Block | Hold
//!                                                                  │ Block
//!                                                                  ▼
//!                                              forbidden_status ──▶ 403 metav1.Status for kubectl
//!  upstream response body ──mask_secrets / LineMasker (watch streams) / JsonPath──▶ client
//! ```
//!
//! [`kube`] reads a request the way the Kubernetes API server does (its `RequestInfo`) and judges
//! it against a role's rules or a built-in profile; [`mask`] rewrites response bodies so Secret
//! values and chosen JSON paths never reach the client. The relay that owns the sockets lives
//! elsewhere and calls into these.

pub mod kube;
pub mod mask;
pub mod route;

pub use kube::{
    Attributes, Decision, KubeRule, KubeRules, attributes, forbidden_status, suspicious,
};
pub use mask::{JsonPath, LineMasker, mask_secrets};
pub use route::{RouteRule, RouteRules};
