//! People: a verified OIDC ID token from a configured identity provider becomes a broker subject
//! with groups.
//!
//! The username comes from one configured claim with no fallback (falling back to `sub` or
//! `email` silently would let two IdP settings name the same person differently). Groups come
//! from one claim holding an array of strings or a single string; when a mapping is configured
//! only mapped IdP groups survive, so an IdP admin creating a group called `admin` grants
//! nothing by accident.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::claims;
use crate::rejection::{Rejection, echo};
use crate::verify::Verified;

/// How to read people's tokens from one identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeopleIssuer {
    /// `iss` of this provider, checked again here so a workload token verified under another
    /// policy can never become a person.
    pub issuer: String,
    /// Claim holding the username (dotted path allowed).
    pub username_claim: String,
    /// Claim holding the IdP groups (dotted path allowed).
    pub groups_claim: String,
    /// IdP group → broker groups. Empty: IdP groups pass through unchanged.
    pub group_mapping: BTreeMap<String, Vec<String>>,
}

impl PeopleIssuer {
    /// `preferred_username` and `groups`, no mapping.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            group_mapping: BTreeMap::new(),
        }
    }
}

/// A person signed in through an identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonIdentity {
    /// The username claim's value.
    pub subject: String,
    /// Broker groups, sorted and without duplicates.
    pub groups: Vec<String>,
}

/// Reads a person from a verified ID token.
pub fn person(issuer: &PeopleIssuer, token: &Verified) -> Result<PersonIdentity, Rejection> {
    if token.issuer() != issuer.issuer {
        return Err(Rejection::WrongIssuer(echo(token.issuer())));
    }
    let subject = match claims::find(token.claims(), &issuer.username_claim) {
        None => return Err(Rejection::MissingClaim(issuer.username_claim.clone())),
        Some(Value::String(name)) if !name.is_empty() && !name.chars().any(char::is_control) => {
            name.clone()
        }
        Some(_) => return Err(Rejection::InvalidClaim(issuer.username_claim.clone())),
    };
    let invalid = || Rejection::InvalidClaim(issuer.groups_claim.clone());
    let idp_groups: Vec<&str> = match claims::find(token.claims(), &issuer.groups_claim) {
        None => Vec::new(),
        Some(Value::String(group)) => vec![group.as_str()],
        Some(Value::Array(values)) => values
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(invalid)?,
        Some(_) => return Err(invalid()),
    };
    let groups: BTreeSet<String> = if issuer.group_mapping.is_empty() {
        idp_groups.into_iter().map(str::to_owned).collect()
    } else {
        idp_groups
            .into_iter()
            .filter_map(|group| issuer.group_mapping.get(group))
            .flatten()
            .cloned()
            .collect()
    };
    Ok(PersonIdentity {
        subject,
        groups: groups.into_iter().collect(),
    })
}
