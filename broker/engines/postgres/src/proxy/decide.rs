//! The decision on each statement: the guard's check of every Query, Parse and FunctionCall,
//! and for a refused one both halves of the substitution (the text the server rejects instead,
//! and the guard's error in place of the server's).

use super::client_broke;
use super::downstream::Downstream;
use super::expect::{Expect, lock};
use super::upstream::Upstream;
use crate::codec::query::{self, tag as qtag};
use crate::codec::{ErrorFields, Query, Severity, tag};
use crate::hooks::Check;
use bytes::BytesMut;

/// SQLSTATE of a statement refused by policy (insufficient_privilege).
pub(super) const REFUSED: &str = "42501";
/// SQLSTATE PostgreSQL gives the substitute text.
const SYNTAX_ERROR: &str = "42601";

/// The session's substitute text: a random token makes it one no client text can contain by
/// chance, so only the server's answer to a substitute is rewritten.
pub(super) fn marker() -> String {
    let token: [u8; 8] = rand::random();
    format!(
        "SLUICE_BLOCKED_{}",
        token.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl Upstream<'_> {
    /// The guard's decision on a message, and the response it will get (for masking).
    pub(super) fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<Check, String> {
        let guard = self.enforcement.guard.as_deref();
        let masker = self.enforcement.masker.as_deref().filter(|_| self.track);
        let check = match tag {
            tag::QUERY => {
                let sql = query::query_text(body).map_err(client_broke)?;
                if let Some(masker) = masker {
                    let facts = masker.analyze(sql);
                    lock(self.shared).simple.push_back(facts);
                }
                guard.map_or(Check::Allow, |g| g.check_sql(sql))
            }
            qtag::PARSE => {
                let parsed = query::Parse::decode(body).map_err(client_broke)?;
                if let Some(masker) = masker {
                    let facts = masker.analyze(parsed.sql);
                    let mut shared = lock(self.shared);
                    match facts {
                        Some(facts) => shared.parsed.insert(parsed.name.to_owned(), facts),
                        None => shared.parsed.remove(parsed.name),
                    };
                }
                guard.map_or(Check::Allow, |g| g.check_sql(parsed.sql))
            }
            qtag::FUNCTION_CALL => {
                let oid = query::function_call_oid(body).map_err(client_broke)?;
                guard.map_or(Check::Allow, |g| g.check_function_call(oid))
            }
            _ => Check::Allow,
        };
        if self.track
            && let Some(expect) = Expect::answer_to(tag, body)?
        {
            lock(self.shared).expect.push_back(expect);
        }
        Ok(check)
    }

    /// Writes, instead of a refused message, one the server fails on in the same way, and
    /// queues the error the client should see instead of the server's.
    pub(super) fn substitute(
        &mut self,
        tag: u8,
        body: &[u8],
        out: &mut BytesMut,
        error: ErrorFields,
    ) -> Result<(), String> {
        let encode = |e: crate::codec::CodecError| format!("cannot encode a substitute: {e}");
        lock(self.shared).rewrites.push_back(error);
        match tag {
            qtag::PARSE => {
                let name = query::Parse::decode(body)
                    .map(|p| p.name.to_owned())
                    .unwrap_or_default();
                query::Parse::encode(&name, self.marker, out).map_err(encode)
            }
            // A Query, or a FunctionCall: both end with ReadyForQuery after an error.
            _ => Query {
                sql: self.marker.to_owned(),
            }
            .encode(out)
            .map_err(encode),
        }
    }
}

impl Downstream<'_> {
    /// Replaces the server's syntax error on a substituted text with the guard's error.
    pub(super) fn rewrite_error(&mut self, fields: ErrorFields) -> ErrorFields {
        if !self.substituted(&fields) {
            return fields;
        }
        lock(self.shared).rewrites.pop_front().unwrap_or_else(|| {
            ErrorFields::new(Severity::Error, REFUSED, "sluice: statement refused")
        })
    }
}

impl Downstream<'_> {
    /// Whether the server's error answers a substituted text (the guard's refusal replaces it).
    pub(super) fn substituted(&self, fields: &ErrorFields) -> bool {
        fields.code() == Some(SYNTAX_ERROR)
            && fields.message().is_some_and(|m| m.contains(self.marker))
    }
}

/// The ERROR a client gets for a statement refused by `rule`.
pub(super) fn refusal(rule: &str, message: &str) -> ErrorFields {
    ErrorFields::new(Severity::Error, REFUSED, format!("sluice: {message}"))
        .with_detail(format!("Refused by the rule \"{rule}\"."))
        .with_hint("Nothing was sent to the database; the session is still usable.")
}
