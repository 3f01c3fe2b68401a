//! Getting and keeping a session token: the device-flow login at the identity provider
//! ([`idp`]), the exchange of its ID token at the broker, and the silent renewal of a session
//! that is about to expire ([`session`]).

pub mod idp;
pub mod session;
