//! Grants to columns and back.
//!
//! The store keeps the wire types of `sluice_shared::grants` as they are: the requester's groups,
//! the CI claims and the approval rule are JSON text in their wire shape, states are their wire
//! names, and times are seconds as the databases' signed 64-bit integers. Every way a column can fail
//! to be a valid grant on the way back is an error ([`StoreError::Corrupt`]), never a default.

use crate::StoreError;
use sluice_shared::grants::{ApprovalRule, Grant, GrantState, Requester, Vote};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// The state's column value. `Unknown` exists only for clients talking to a newer broker and is
/// never stored.
pub(crate) fn state_name(state: GrantState) -> Result<&'static str, StoreError> {
    match state {
        GrantState::Unknown => Err(StoreError::Invalid {
            what: "the `unknown` grant state".into(),
        }),
        known => Ok(known.as_str()),
    }
}

/// Reads a state column; anything but the five known names is corruption.
pub(crate) fn parse_state(id: &str, name: &str) -> Result<GrantState, StoreError> {
    match name {
        "pending" => Ok(GrantState::Pending),
        "active" => Ok(GrantState::Active),
        "denied" => Ok(GrantState::Denied),
        "expired" => Ok(GrantState::Expired),
        "revoked" => Ok(GrantState::Revoked),
        other => Err(corrupt(id, format!("unknown state {other:?}"))),
    }
}

/// Seconds (or a count) as the database stores them (a signed 64-bit integer).
pub(crate) fn to_db(field: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid {
        what: format!(
            "{field} = {value} (beyond the largest value the store keeps, {})",
            i64::MAX
        ),
    })
}

fn to_db_opt(field: &str, value: Option<u64>) -> Result<Option<i64>, StoreError> {
    value.map(|v| to_db(field, v)).transpose()
}

fn from_db(id: &str, field: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(id, format!("negative {field} ({value})")))
}

fn from_db_opt(id: &str, field: &str, value: Option<i64>) -> Result<Option<u64>, StoreError> {
    value.map(|v| from_db(id, field, v)).transpose()
}

fn corrupt(id: &str, what: String) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        what,
    }
}

fn to_json<T: serde::Serialize>(field: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what: format!("{field}: {e}"),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    id: &str,
    field: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(id, format!("{field} is not valid JSON: {e}")))
}

/// A grant's row, ready to bind, in the column order of [`GRANT_COLUMNS`].
#[derive(Debug)]
pub(crate) struct GrantRow {
    pub(crate) id: String,
    pub(crate) state: &'static str,
    pub(crate) subject: String,
    pub(crate) groups: String,
    pub(crate) auth_method: String,
    pub(crate) provider: Option<String>,
    pub(crate) ci: String,
    pub(crate) resource: String,
    pub(crate) role: String,
    pub(crate) rule: String,
    pub(crate) reason: String,
    pub(crate) ttl_secs: i64,
    pub(crate) requested_ttl_secs: Option<i64>,
    pub(crate) approval: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) activated_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) ended_by: Option<String>,
    pub(crate) end_reason: Option<String>,
}

/// The `grants` columns, in [`GrantRow`] order.
pub(crate) const GRANT_COLUMNS: &str = "id, state, subject, groups, auth_method, provider, ci, \
     resource, role, rule, reason, ttl_secs, requested_ttl_secs, approval, created_at, \
     activated_at, expires_at, ended_at, ended_by, end_reason";

impl GrantRow {
    /// Checks and encodes everything before the first statement runs, so a bad value never
    /// leaves half a grant behind.
    pub(crate) fn encode(grant: &Grant) -> Result<Self, StoreError> {
        let approval = match &grant.approval {
            Some(rule) => {
                // Kept as JSON, but compared in SQL (`find_reusable`): same range as a column.
                to_db("approval.expires_at", rule.expires_at)?;
                Some(to_json("approval", rule)?)
            }
            None => None,
        };
        Ok(Self {
            id: grant.id.clone(),
            state: state_name(grant.state)?,
            subject: grant.requester.subject.clone(),
            groups: to_json("groups", &grant.requester.groups)?,
            auth_method: grant.requester.auth_method.clone(),
            provider: grant.requester.provider.clone(),
            ci: to_json("ci", &grant.requester.ci)?,
            resource: grant.resource.clone(),
            role: grant.role.clone(),
            rule: grant.rule.clone(),
            reason: grant.reason.clone(),
            ttl_secs: to_db("ttl_secs", grant.ttl_secs)?,
            requested_ttl_secs: to_db_opt("requested_ttl_secs", grant.requested_ttl_secs)?,
            approval,
            created_at: to_db("created_at", grant.created_at)?,
            activated_at: to_db_opt("activated_at", grant.activated_at)?,
            expires_at: to_db_opt("expires_at", grant.expires_at)?,
            ended_at: to_db_opt("ended_at", grant.ended_at)?,
            ended_by: grant.ended_by.clone(),
            end_reason: grant.end_reason.clone(),
        })
    }
}

/// A vote, ready to bind.
#[derive(Debug)]
pub(crate) struct VoteRow {
    pub(crate) approver: String,
    pub(crate) approve: bool,
    pub(crate) reason: Option<String>,
    pub(crate) at: i64,
}

impl VoteRow {
    pub(crate) fn encode(vote: &Vote) -> Result<Self, StoreError> {
        Ok(Self {
            approver: vote.approver.clone(),
            approve: vote.approve,
            reason: vote.reason.clone(),
            at: to_db("vote time", vote.at)?,
        })
    }
}

/// Reads the grant columns of a row (votes come separately, see [`decode_vote`]).
pub(crate) fn decode_grant(id: &str, row: &AnyRow) -> Result<Grant, StoreError> {
    let state: String = row.try_get("state")?;
    let groups: String = row.try_get("groups")?;
    let ci: String = row.try_get("ci")?;
    let approval: Option<String> = row.try_get("approval")?;
    Ok(Grant {
        id: id.to_owned(),
        state: parse_state(id, &state)?,
        requester: Requester {
            subject: row.try_get("subject")?,
            groups: from_json::<Vec<String>>(id, "groups", &groups)?,
            auth_method: row.try_get("auth_method")?,
            provider: row.try_get("provider")?,
            ci: from_json::<BTreeMap<String, String>>(id, "ci", &ci)?,
        },
        resource: row.try_get("resource")?,
        role: row.try_get("role")?,
        rule: row.try_get("rule")?,
        reason: row.try_get("reason")?,
        ttl_secs: from_db(id, "ttl_secs", row.try_get("ttl_secs")?)?,
        requested_ttl_secs: from_db_opt(
            id,
            "requested_ttl_secs",
            row.try_get("requested_ttl_secs")?,
        )?,
        approval: approval
            .map(|text| from_json::<ApprovalRule>(id, "approval", &text))
            .transpose()?,
        votes: Vec::new(),
        created_at: from_db(id, "created_at", row.try_get("created_at")?)?,
        activated_at: from_db_opt(id, "activated_at", row.try_get("activated_at")?)?,
        expires_at: from_db_opt(id, "expires_at", row.try_get("expires_at")?)?,
        ended_at: from_db_opt(id, "ended_at", row.try_get("ended_at")?)?,
        ended_by: row.try_get("ended_by")?,
        end_reason: row.try_get("end_reason")?,
    })
}

/// Reads the `v_*` columns of a grant-joined-with-votes row; `None` for a grant without votes
/// (the LEFT JOIN's NULLs).
pub(crate) fn decode_vote(id: &str, row: &AnyRow) -> Result<Option<Vote>, StoreError> {
    let Some(approver) = row.try_get::<Option<String>, _>("v_approver")? else {
        return Ok(None);
    };
    // PostgreSQL keeps a boolean, SQLite 0 or 1.
    let approve = match row.try_get::<bool, _>("v_approve") {
        Ok(approve) => approve,
        Err(_) => match row.try_get::<i64, _>("v_approve")? {
            0 => false,
            1 => true,
            other => return Err(corrupt(id, format!("vote approve = {other} (not 0 or 1)"))),
        },
    };
    Ok(Some(Vote {
        approver,
        approve,
        reason: row.try_get("v_reason")?,
        at: from_db(id, "vote time", row.try_get("v_at")?)?,
    }))
}
