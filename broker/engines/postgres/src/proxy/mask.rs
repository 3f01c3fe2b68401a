//! Masking of what the server answers, for the downstream pump: which columns a result has
//! (planning a row description, or a portal's from its statement), each data row, the text of
//! errors and notices, and COPY output.

use super::downstream::Downstream;
use super::expect::{Expect, lock};
use crate::codec::ErrorFields;
use crate::codec::query::{self, FieldDescription};
use crate::hooks::{ColumnInfo, Masked, ResultOf, TextFacts};
use bytes::BytesMut;

impl Downstream<'_> {
    /// Masks the text fields of an error or notice (message, detail, hint, context, where).
    pub(super) fn mask_fields(
        &self,
        mut fields: ErrorFields,
        facts: Option<&TextFacts>,
    ) -> ErrorFields {
        let Some(masker) = self.enforcement.masker.as_deref() else {
            return fields;
        };
        let of = ResultOf {
            facts,
            statement: self.simple_statement,
        };
        for (ty, value) in &mut fields.fields {
            if matches!(ty, b'M' | b'D' | b'H' | b'W' | b'q')
                && let Some(masked) = masker.mask_message(value, of)
            {
                *value = masked;
            }
        }
        fields
    }

    /// What the masker said of the text the server is answering now: the simple Query's, or
    /// the prepared statement's of the portal being executed.
    pub(super) fn current_facts(&self) -> Option<TextFacts> {
        let shared = lock(self.shared);
        match shared.expect.front()? {
            Expect::SimpleQuery => shared.simple.front().cloned().flatten(),
            Expect::Execute(portal) => {
                let statement = &shared.portals.get(portal)?.statement;
                shared.parsed.get(statement).cloned()
            }
            _ => None,
        }
    }

    /// Passes a notification's payload through the masker like any other text the client
    /// receives (a `pg_notify` payload can carry any value, and it is not a result row).
    pub(super) fn notification(&self, body: &[u8], out: &mut BytesMut) -> Result<(), String> {
        let broke = |e: crate::codec::CodecError| format!("unreadable notification: {e}");
        let mut cursor = crate::codec::Cursor::new(body, "NotificationResponse");
        let pid = cursor.i32().map_err(broke)?;
        let channel = cursor.cstr_bytes().map_err(broke)?;
        let payload = cursor.cstr_bytes().map_err(broke)?;
        cursor.finish().map_err(broke)?;
        let masked = self
            .enforcement
            .masker
            .as_deref()
            .and_then(|m| m.mask_text(&String::from_utf8_lossy(payload)));
        let payload = masked.as_deref().map_or(payload, str::as_bytes);
        crate::codec::write_frame(
            out,
            Some(crate::codec::tag::NOTIFICATION_RESPONSE),
            "NotificationResponse",
            |b| {
                bytes::BufMut::put_i32(b, pid);
                crate::codec::put_cstr(b, channel, "channel")?;
                crate::codec::put_cstr(b, payload, "payload")
            },
        )
        .map_err(|e| format!("cannot encode a notification: {e}"))
    }

    /// Keeps a described statement's or portal's columns, or plans a simple query's result.
    pub(super) fn row_description(
        &mut self,
        fields: Vec<FieldDescription>,
        described: &[ColumnInfo],
    ) {
        let Some(masker) = self.enforcement.masker.as_deref() else {
            return;
        };
        let mut shared = lock(self.shared);
        match shared.expect.front().cloned() {
            Some(Expect::DescribeStatement(name)) => {
                shared.expect.pop_front();
                shared.statements.insert(name, fields);
            }
            Some(Expect::DescribePortal(name)) => {
                shared.expect.pop_front();
                if let Some(portal) = shared.portals.get_mut(&name) {
                    portal.described = Some(fields);
                }
            }
            front => {
                let facts = match front {
                    Some(Expect::SimpleQuery) => shared.simple.front().cloned().flatten(),
                    _ => None,
                };
                drop(shared);
                let of = ResultOf {
                    facts: facts.as_ref(),
                    statement: self.simple_statement,
                };
                self.simple_mask = masker.plan_for(described, of);
            }
        }
    }

    pub(super) fn data_row(
        &mut self,
        body: &[u8],
        frame: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), String> {
        let enforcement = self.enforcement;
        let Some(masker) = enforcement.masker.as_deref() else {
            out.extend_from_slice(frame);
            return Ok(());
        };
        // Rows of an Execute use the portal's columns; otherwise the last RowDescription's.
        let executing = match lock(self.shared).expect.front() {
            Some(Expect::Execute(portal)) => Some(portal.clone()),
            _ => None,
        };
        let mask = match executing {
            Some(portal) => {
                if self
                    .portal_mask
                    .as_ref()
                    .is_none_or(|(name, _)| *name != portal)
                {
                    let (cols, facts) = self.portal_columns(&portal)?;
                    let of = ResultOf {
                        facts: facts.as_ref(),
                        statement: 0,
                    };
                    self.portal_mask = Some((portal, masker.plan_for(&cols, of)));
                }
                self.portal_mask
                    .as_mut()
                    .and_then(|(_, mask)| mask.as_mut())
            }
            None => self.simple_mask.as_mut(),
        };
        let Some(mask) = mask else {
            out.extend_from_slice(frame);
            return Ok(());
        };
        let values =
            query::data_row(body).map_err(|e| format!("unreadable row from the target: {e}"))?;
        let results: Vec<Masked> = values
            .iter()
            .enumerate()
            .map(|(index, value)| match value {
                None => Masked::Unchanged,
                Some(value) => mask.mask(index, value),
            })
            .collect();
        if results.iter().all(|r| *r == Masked::Unchanged) {
            out.extend_from_slice(frame);
            return Ok(());
        }
        let rewritten = values
            .iter()
            .zip(&results)
            .map(|(value, result)| match result {
                Masked::Unchanged => *value,
                Masked::Replace(new) => Some(new.as_slice()),
                Masked::Null => None,
            });
        query::encode_data_row(rewritten, out).map_err(|e| format!("cannot encode a row: {e}"))
    }

    /// Masks one CopyData message of COPY output (`frame` is the whole message).
    pub(super) fn copy_data(
        &self,
        body: &[u8],
        frame: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), String> {
        let masker = self.enforcement.masker.as_deref();
        let text = std::str::from_utf8(body).ok();
        match (masker, text) {
            (Some(m), Some(text)) => match m.mask_text(text) {
                Some(masked) => query::encode_copy_data(masked.as_bytes(), out)
                    .map_err(|e| format!("cannot encode COPY data: {e}")),
                None => {
                    out.extend_from_slice(frame);
                    Ok(())
                }
            },
            // Not text: binary COPY or another encoding; never sent unmasked.
            _ => Err(
                "COPY output that is not UTF-8 text cannot be masked; use COPY ... (FORMAT text) \
                 or (FORMAT csv)"
                    .into(),
            ),
        }
    }

    /// The columns of a bound portal (described, or its statement's with the Bind's formats),
    /// and what the masker said of its statement's text.
    fn portal_columns(&self, portal: &str) -> Result<(Vec<ColumnInfo>, Option<TextFacts>), String> {
        let shared = lock(self.shared);
        let Some(bound) = shared.portals.get(portal) else {
            return Err(format!(
                "rows of portal \"{portal}\" arrived before it was bound"
            ));
        };
        let facts = shared.parsed.get(&bound.statement).cloned();
        match (&bound.described, shared.statements.get(&bound.statement)) {
            (Some(fields), _) => Ok((columns(fields, &[]), facts)),
            (None, Some(fields)) => Ok((columns(fields, &bound.formats), facts)),
            (None, None) => Err(format!(
                "rows of statement \"{}\" arrived without a description; masking needs to know \
                 the columns (Describe the statement or the portal first)",
                bound.statement
            )),
        }
    }
}

/// Refuses the start of binary COPY output, which cannot be masked.
pub(super) fn copy_out(body: &[u8]) -> Result<(), String> {
    // Overall format: 0 text, 1 binary.
    if body.first() == Some(&1) {
        return Err(
            "binary COPY output cannot be masked; use COPY ... (FORMAT text) or \
             (FORMAT csv)"
                .into(),
        );
    }
    Ok(())
}

/// Column facts for the masker; `formats` from a Bind overrides the described formats.
pub(super) fn columns(fields: &[FieldDescription], formats: &[i16]) -> Vec<ColumnInfo> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let format = match formats.len() {
                0 => f.format,
                1 => formats[0],
                _ => formats.get(i).copied().unwrap_or(0),
            };
            ColumnInfo {
                name: f.name.clone(),
                table_oid: f.table_oid,
                column: f.column,
                type_oid: f.type_oid,
                binary: format == 1,
            }
        })
        .collect()
}
