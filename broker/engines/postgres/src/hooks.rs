//! The interfaces through which the broker enforces policy inside a PostgreSQL session: a
//! [`Guard`] that decides on each SQL text, [`Approvals`] that hold a statement for a person, a
//! [`Masker`] that rewrites values on their way to the client, and a [`Journal`] that hears
//! what happened, for the session recording.
//!
//! The engine knows the protocol and nothing about policy; the broker implements these traits
//! with the SQL classifier, the grant store and the masking rules. Every method is cheap and
//! synchronous except asking a person and looking up tables for masking, which return futures.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What to do with one SQL text (which may hold several statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Send it to the database.
    Allow,
    /// Refuse it: the client gets an ERROR (SQLSTATE 42501) with `message`; nothing reaches the
    /// database.
    Block {
        /// The rule that refused it (named in the message and the audit trail).
        rule: String,
        /// What the person at psql reads.
        message: String,
    },
    /// Hold it until a person approves or denies it.
    Hold {
        /// The rule that asks for approval.
        rule: String,
        /// Why, for the approver and the waiting client.
        reason: String,
    },
}

/// Decides on every SQL text a client sends.
pub trait Guard: Send + Sync {
    /// A simple Query (`Q`) or an extended-protocol Parse (`P`).
    fn check_sql(&self, sql: &str) -> Check;

    /// A FunctionCall (`F`): the legacy fast path that calls a function by OID without any
    /// SQL (libpq's large-object API uses it). Guards that cannot tell what it calls refuse it.
    fn check_function_call(&self, function_oid: u32) -> Check;
}

// Holds are the same for every engine: they live in `sluice-engine`.
pub use sluice_engine::hold::{Approvals, Hold, HoldOutcome, HoldRequest};

/// One result column, from a RowDescription and, in the extended protocol, the Bind that set
/// its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name (or alias) as the server reports it.
    pub name: String,
    /// OID of the table the column comes from, 0 for computed columns.
    pub table_oid: u32,
    /// Attribute number in that table, 0 for computed columns.
    pub column: i16,
    /// OID of the column's type.
    pub type_oid: u32,
    /// True for binary format, false for text.
    pub binary: bool,
}

/// A value after masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masked {
    /// Send it as it is.
    Unchanged,
    /// Send these bytes instead.
    Replace(Vec<u8>),
    /// Send SQL NULL instead (for binary values that cannot be rewritten in their type).
    Null,
}

/// Masking for one result shape (one RowDescription).
pub trait RowMask: Send {
    /// Value `index` of a DataRow (`None` is SQL NULL, never passed).
    fn mask(&mut self, index: usize, value: &[u8]) -> Masked;
}

/// What a masker worked out from one text the client sent (a simple Query or a Parse): handed
/// back with every result that text produces. Opaque to the engine.
pub type TextFacts = Arc<dyn std::any::Any + Send + Sync>;

/// Which text, and which of its statements, a result answers.
#[derive(Clone, Copy, Default)]
pub struct ResultOf<'a> {
    /// What [`Masker::analyze`] said of the text; `None` when it said nothing or the engine
    /// cannot tell which text the result answers.
    pub facts: Option<&'a TextFacts>,
    /// The statement's position in the text (0 for the extended protocol).
    pub statement: usize,
}

impl std::fmt::Debug for ResultOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultOf")
            .field("facts", &self.facts.is_some())
            .field("statement", &self.statement)
            .finish()
    }
}

/// Rewrites what the database sends before the client sees it.
pub trait Masker: Send + Sync {
    /// Called once per result shape; `None` means no column of it is masked (rows pass through
    /// untouched, the fast path).
    fn plan(&self, columns: &[ColumnInfo]) -> Option<Box<dyn RowMask>>;

    /// Works out what a text the client sends (a simple Query, or a Parse) says about the
    /// results it will produce, before it is sent on. By default nothing.
    fn analyze(&self, _sql: &str) -> Option<TextFacts> {
        None
    }

    /// [`plan`](Self::plan) for a result of a known text and statement. By default the same
    /// as `plan`.
    fn plan_for(&self, columns: &[ColumnInfo], _of: ResultOf<'_>) -> Option<Box<dyn RowMask>> {
        self.plan(columns)
    }

    /// Whether [`plan`](Self::plan) would know more about `columns` after
    /// [`resolve`](Self::resolve): some come from a table the masker cannot name yet (created
    /// since it read the catalog). Called for every RowDescription when masking; must be cheap
    /// and not allocate. By default everything is resolved.
    fn unresolved(&self, _columns: &[ColumnInfo]) -> bool {
        false
    }

    /// Finds out what `plan` needs about `columns` (the names behind their table OIDs). The
    /// relay awaits it before planning the result, which delays only that result. It ends by
    /// itself (bounded by a timeout) and cannot fail: `plan` must mask whatever stays
    /// unresolved.
    fn resolve<'a>(
        &'a self,
        _columns: &'a [ColumnInfo],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(std::future::ready(()))
    }

    /// The text fields of an ERROR or NOTICE that answers a known text's statement: by
    /// default [`mask_text`](Self::mask_text). A masker that knows the statement read a
    /// masked column can do more (a failed cast quotes the value).
    fn mask_message(&self, text: &str, _of: ResultOf<'_>) -> Option<String> {
        self.mask_text(text)
    }

    /// Free text the server echoes values in: NOTICE and ERROR fields (a unique violation's
    /// DETAIL quotes the duplicate value) and COPY TO STDOUT data. `None` when unchanged.
    fn mask_text(&self, text: &str) -> Option<String>;
}

/// How a statement was decided, as the session recording keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided<'a> {
    /// Sent to the database.
    Allowed,
    /// Refused by `rule`.
    Blocked {
        /// The rule.
        rule: &'a str,
        /// What the client was told.
        message: &'a str,
    },
    /// Held by `rule`, approved by `by` (request `request`), then sent.
    Approved {
        /// The rule that held it.
        rule: &'a str,
        /// Who approved.
        by: &'a str,
        /// The approval request id.
        request: &'a str,
    },
    /// Held by `rule` and not approved (denied, timed out, approvals unavailable, or withdrawn
    /// because the client cancelled it or went away).
    Denied {
        /// The rule that held it.
        rule: &'a str,
        /// Why, as the client was told.
        reason: &'a str,
        /// The approval request id, when one was filed.
        request: &'a str,
    },
}

/// Hears what happens in a session, in order, for its recording: every SQL text with its
/// decision, and what the server answered. Values reach it masked. Calls come from the relay's
/// two directions and must be cheap (queue and return).
pub trait Journal: Send + Sync {
    /// A SQL text the client sent (a simple Query, possibly several statements, or a Parse),
    /// or a function call by OID (described as text).
    fn statement(&self, sql: &str, extended: bool, decided: Decided<'_>);

    /// A CommandComplete: the command tag (`SELECT 3`, `UPDATE 1`).
    fn complete(&self, tag: &str);

    /// An ErrorResponse the client received (after masking).
    fn error(&self, code: &str, message: &str);

    /// Whether result rows are wanted; when false, [`columns`](Self::columns) and
    /// [`row`](Self::row) are never called (the fast path).
    fn wants_rows(&self) -> bool {
        false
    }

    /// The column names of the result rows that follow.
    fn columns(&self, _names: &[&str]) {}

    /// One result row as the client received it (masked); `None` is SQL NULL.
    fn row(&self, _values: &[Option<&[u8]>]) {}
}

/// What the engine enforces in a session; `None` everywhere is a plain relay.
#[derive(Default, Clone)]
pub struct Enforcement {
    /// Decides on statements.
    pub guard: Option<std::sync::Arc<dyn Guard>>,
    /// Asks people about held statements; without it a hold is a block.
    pub approvals: Option<std::sync::Arc<dyn Approvals>>,
    /// Masks results.
    pub masker: Option<std::sync::Arc<dyn Masker>>,
    /// Hears statements, decisions and outcomes, for the session recording.
    pub journal: Option<std::sync::Arc<dyn Journal>>,
}

impl std::fmt::Debug for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcement")
            .field("guard", &self.guard.is_some())
            .field("approvals", &self.approvals.is_some())
            .field("masker", &self.masker.is_some())
            .field("journal", &self.journal.is_some())
            .finish()
    }
}

impl Enforcement {
    /// True when nothing is enforced or recorded and the byte relay can be used.
    pub fn is_passthrough(&self) -> bool {
        self.guard.is_none() && self.masker.is_none() && self.journal.is_none()
    }
}
