//! What the journal (the session recording) hears: each statement with its decision, on the
//! way up, and each answer as the client received it, on the way down.

use super::upstream::Upstream;
use crate::codec::query::{self, tag as qtag};
use crate::codec::tag;
use crate::hooks::{Decided, Journal};

impl Upstream<'_> {
    /// Tells the journal about a message that carries SQL (or calls a function by OID).
    pub(super) fn journal(&self, tag: u8, body: &[u8], decided: Decided<'_>) {
        let Some(journal) = self.enforcement.journal.as_deref() else {
            return;
        };
        match tag {
            tag::QUERY => {
                if let Ok(sql) = query::query_text(body) {
                    journal.statement(sql, false, decided);
                }
            }
            qtag::PARSE => {
                if let Ok(parsed) = query::Parse::decode(body) {
                    journal.statement(parsed.sql, true, decided);
                }
            }
            qtag::FUNCTION_CALL => {
                if let Ok(oid) = query::function_call_oid(body) {
                    journal.statement(&format!("-- function call by OID {oid}"), true, decided);
                }
            }
            _ => {}
        }
    }
}

/// Tells the journal what the server answered: command tags, and (when it wants them) column
/// names and rows as the client received them, masked. `sent` is what went to the client for
/// this message.
pub(super) fn journal_answer(journal: &dyn Journal, rows: bool, tag: u8, body: &[u8], sent: &[u8]) {
    match tag {
        qtag::COMMAND_COMPLETE => {
            let text = body.strip_suffix(&[0]).unwrap_or(body);
            journal.complete(&String::from_utf8_lossy(text));
        }
        qtag::ROW_DESCRIPTION if rows => {
            if let Ok(fields) = query::row_description(body) {
                let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                journal.columns(&names);
            }
        }
        qtag::DATA_ROW if rows => {
            if let Some(sent_body) = sent.get(5..)
                && let Ok(values) = query::data_row(sent_body)
            {
                journal.row(&values);
            }
        }
        _ => {}
    }
}

/// The journal's view of a hold that did not end in a run.
pub(super) fn denied<'a>(rule: &'a str, reason: &'a str, request: &'a str) -> Decided<'a> {
    Decided::Denied {
        rule,
        reason,
        request,
    }
}
