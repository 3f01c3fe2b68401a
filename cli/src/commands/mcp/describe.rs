//! The `describe` tool: tables and columns of a postgres resource, read through the same
//! session and guardrails as any query, and which columns the caller's masking rewrites (the
//! broker answers that from the role's masking profile: `POST /v1/grants/{id}/masked-columns`).

use super::access::Access;
use super::tools::{ColumnEntry, DescribeArgs, DescribeResult, TableEntry};
use sluice_shared::api::QualifiedColumn;

/// Most columns listed in one answer.
const MAX_COLUMNS: usize = 2000;

pub async fn run(access: &Access, args: DescribeArgs) -> Result<DescribeResult, String> {
    let mut sql = String::from(
        "select table_schema, table_name, column_name, data_type \
         from information_schema.columns \
         where table_schema not in ('pg_catalog', 'information_schema')",
    );
    if let Some(schema) = &args.schema {
        sql.push_str(&format!(" and table_schema = {}", literal(schema)?));
    }
    if let Some(table) = &args.table {
        sql.push_str(&format!(" and table_name = {}", literal(table)?));
    }
    sql.push_str(" order by table_schema, table_name, ordinal_position");
    let outcome = access
        .query(&args.resource, &sql, MAX_COLUMNS, |_| {})
        .await?;
    if let Some(error) = outcome.error {
        return Err(format!("reading the catalog failed: {error}"));
    }
    let columns: Vec<QualifiedColumn> = outcome
        .rows
        .iter()
        .filter_map(|row| match row.as_slice() {
            [Some(schema), Some(table), Some(column), _] => Some(QualifiedColumn {
                schema: schema.clone(),
                table: table.clone(),
                column: column.clone(),
            }),
            _ => None,
        })
        .collect();
    let grant = access.active(&args.resource).await?;
    let masked = access.masked_columns(&grant.id, &columns).await?;
    let mut tables: Vec<TableEntry> = Vec::new();
    for (i, row) in outcome.rows.iter().enumerate() {
        let [Some(schema), Some(table), Some(column), data_type] = row.as_slice() else {
            continue;
        };
        let entry = ColumnEntry {
            name: column.clone(),
            data_type: data_type.clone().unwrap_or_default(),
            masked_by: masked.rules.get(i).cloned().flatten(),
        };
        match tables.last_mut() {
            Some(last) if last.schema == *schema && last.table == *table => {
                last.columns.push(entry);
            }
            _ => tables.push(TableEntry {
                schema: schema.clone(),
                table: table.clone(),
                columns: vec![entry],
            }),
        }
    }
    if tables.is_empty() && (args.schema.is_some() || args.table.is_some()) {
        return Err(
            "no such table (or you may not see it); call describe without a table to \
                    list what there is"
                .into(),
        );
    }
    let mut note = String::from(
        "masked_by names the rule that rewrites the column's values in every result you get",
    );
    if !masked.detectors.is_empty() {
        note.push_str(&format!(
            "; values of any column that look like {} are masked as well",
            masked.detectors.join(", ")
        ));
    }
    Ok(DescribeResult {
        tables,
        truncated: outcome.truncated,
        note,
    })
}

/// A SQL string literal (the broker's sessions run with standard_conforming_strings on).
fn literal(text: &str) -> Result<String, String> {
    if text.contains('\0') || text.len() > 256 {
        return Err("a schema or table name is at most 256 characters, without NUL".into());
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_become_literals_that_cannot_break_out() {
        assert_eq!(
            super::literal("o'; drop table x; --").expect("ok"),
            "'o''; drop table x; --'"
        );
        assert!(super::literal("a\0b").is_err());
    }
}
