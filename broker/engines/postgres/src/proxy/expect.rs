//! The expected-response queue: which answer the server owes for each message the upstream
//! pump forwarded, and the prepared statements and bound portals those answers refer to, so
//! the downstream pump knows which columns a DataRow has. Tracked only when masking.

use super::client_broke;
use super::downstream::Downstream;
use crate::codec::query::{self, FieldDescription, Target, tag as qtag};
use crate::codec::{ErrorFields, tag};
use crate::hooks::TextFacts;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// What the server will answer, in order, for messages the upstream pump forwarded (tracked
/// only when masking needs to know which columns a DataRow has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    Parse,
    Bind {
        portal: String,
        statement: String,
        formats: Vec<i16>,
    },
    DescribeStatement(String),
    DescribePortal(String),
    Execute(String),
    Close,
    Sync,
    SimpleQuery,
    FunctionCall,
}

impl Expect {
    /// The answer the server owes for a client message, if it is one that gets an answer.
    pub(super) fn answer_to(tag: u8, body: &[u8]) -> Result<Option<Self>, String> {
        Ok(Some(match tag {
            tag::QUERY => Self::SimpleQuery,
            qtag::PARSE => Self::Parse,
            qtag::FUNCTION_CALL => Self::FunctionCall,
            qtag::BIND => {
                let bind = query::Bind::decode(body).map_err(client_broke)?;
                Self::Bind {
                    portal: bind.portal.to_owned(),
                    statement: bind.statement.to_owned(),
                    formats: bind.result_formats,
                }
            }
            qtag::DESCRIBE => match Target::decode(body, "Describe").map_err(client_broke)? {
                Target::Statement(name) => Self::DescribeStatement(name.to_owned()),
                Target::Portal(name) => Self::DescribePortal(name.to_owned()),
            },
            qtag::EXECUTE => {
                let portal = query::execute_portal(body).map_err(client_broke)?;
                Self::Execute(portal.to_owned())
            }
            qtag::CLOSE => Self::Close,
            qtag::SYNC => Self::Sync,
            _ => return Ok(None),
        }))
    }
}

/// A bound portal: its statement and result formats, and its columns once described.
#[derive(Debug, Clone, Default)]
pub(super) struct Portal {
    pub(super) statement: String,
    pub(super) formats: Vec<i16>,
    pub(super) described: Option<Vec<FieldDescription>>,
}

/// State both pumps see, never locked across an await.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) expect: VecDeque<Expect>,
    pub(super) statements: HashMap<String, Vec<FieldDescription>>,
    pub(super) portals: HashMap<String, Portal>,
    /// The errors that replace the server's answer to each substituted text, in order.
    pub(super) rewrites: VecDeque<ErrorFields>,
    /// What the masker said of each queued simple Query's text, in the order of their
    /// [`Expect::SimpleQuery`].
    pub(super) simple: VecDeque<Option<TextFacts>>,
    /// What the masker said of each prepared statement's text, by statement name.
    pub(super) parsed: HashMap<String, TextFacts>,
}

pub(super) fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Downstream<'_> {
    /// After an error in an extended batch the server skips to the Sync: so do the
    /// expectations.
    pub(super) fn error_in_extended_batch(&mut self) {
        let mut shared = lock(self.shared);
        if matches!(
            shared.expect.front(),
            Some(Expect::SimpleQuery | Expect::FunctionCall) | None
        ) {
            return;
        }
        while let Some(front) = shared.expect.front() {
            if *front == Expect::Sync {
                break;
            }
            shared.expect.pop_front();
        }
        self.portal_mask = None;
    }

    /// Keeps the expectation queue in step with responses that carry no rows.
    pub(super) fn track(&mut self, tag: u8) {
        let mut shared = lock(self.shared);
        let shared = &mut *shared;
        match tag {
            qtag::PARSE_COMPLETE | qtag::CLOSE_COMPLETE => {
                shared.expect.pop_front();
            }
            qtag::BIND_COMPLETE => {
                if let Some(Expect::Bind {
                    portal,
                    statement,
                    formats,
                }) = shared.expect.pop_front()
                {
                    if self
                        .portal_mask
                        .as_ref()
                        .is_some_and(|(name, _)| *name == portal)
                    {
                        self.portal_mask = None;
                    }
                    shared.portals.insert(
                        portal,
                        Portal {
                            statement,
                            formats,
                            described: None,
                        },
                    );
                }
            }
            qtag::NO_DATA => {
                shared.expect.pop_front();
            }
            qtag::COMMAND_COMPLETE | qtag::EMPTY_QUERY | qtag::PORTAL_SUSPENDED => {
                match shared.expect.front() {
                    Some(Expect::Execute(_)) => {
                        shared.expect.pop_front();
                        self.portal_mask = None;
                    }
                    Some(Expect::SimpleQuery) => {
                        // The next statement of the text answers next.
                        self.simple_mask = None;
                        self.simple_statement += 1;
                    }
                    _ => self.simple_mask = None,
                }
            }
            tag::READY_FOR_QUERY => {
                // Ends a Sync, a simple Query or a FunctionCall.
                if shared.expect.pop_front() == Some(Expect::SimpleQuery) {
                    shared.simple.pop_front();
                }
                self.simple_mask = None;
                self.simple_statement = 0;
                self.portal_mask = None;
            }
            _ => {}
        }
    }
}
