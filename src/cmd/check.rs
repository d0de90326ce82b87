//! `check`: signs in and reports, per object, whether a backfill of it can run.

use serde::Serialize;

use crate::config::cli;
use crate::config::{self, ProcessEnv};
use crate::error::{ExitKind, UserFacing};
use crate::salesforce::SalesforceClient;
use crate::salesforce::select;
use crate::salesforce::soql::{self, Identifier};

use super::{Failure, connect, usage_line};

#[derive(Debug, Serialize)]
struct ObjectCheck {
    object: String,
    exists: bool,
    queryable: bool,
    cursor: Option<String>,
    rows: Option<u64>,
    problem: Option<String>,
}

pub(super) async fn check(args: &cli::CheckArgs) -> Result<(), Failure> {
    let file = config::ConfigFile::load(args.connection.config.as_deref())?;
    let connection = config::connection(&args.connection, &file, &ProcessEnv)?;
    let limits = config::limits(&args.limits, &file)?;
    let objects = config::objects(&args.objects)?;
    let cursor = Identifier::parse(
        args.cursor_field
            .as_deref()
            .unwrap_or(config::DEFAULT_CURSOR_FIELD),
    )
    .map_err(config::ConfigError::from)?;
    let client = connect(&connection, &limits).await?;
    println!(
        "Connected! {} (API {})",
        client.instance_url(),
        connection.api_version
    );
    println!("{}", usage_line(&client));
    let mut problems = Vec::new();
    for object in &objects {
        let result = check_object(&client, object, &cursor).await?;
        println!(
            "  {:<24} {}",
            result.object,
            match &result.problem {
                None => format!(
                    "ok: queryable, cursor `{}`, {} rows",
                    result.cursor.as_deref().unwrap_or("-"),
                    result.rows.unwrap_or(0)
                ),
                Some(p) => format!("problem: {p}"),
            }
        );
        if let Some(p) = result.problem {
            problems.push(p);
        }
    }
    match problems.as_slice() {
        [] => Ok(()),
        [one] => Err(Failure::new(ExitKind::Usage, one.clone(), None)),
        many => Err(Failure::new(
            ExitKind::Usage,
            format!(
                "{} objects have problems; the first: {}",
                many.len(),
                many[0]
            ),
            None,
        )),
    }
}

async fn check_object(
    client: &SalesforceClient,
    object: &Identifier,
    cursor: &Identifier,
) -> Result<ObjectCheck, Failure> {
    let mut check = ObjectCheck {
        object: object.to_string(),
        exists: false,
        queryable: false,
        cursor: None,
        rows: None,
        problem: None,
    };
    let describe = match client.describe(object.as_str()).await {
        Ok(d) => d,
        Err(e) if e.exit_kind() == ExitKind::Usage => {
            check.problem = Some(e.to_string());
            return Ok(check);
        }
        Err(e) => return Err(e.into()),
    };
    check.exists = true;
    check.queryable = describe.queryable;
    match select::select(&describe, Some(&[]), false, cursor) {
        Ok(sel) => check.cursor = Some(sel.cursor.to_string()),
        Err(e) => {
            check.problem = Some(e.to_string());
            return Ok(check);
        }
    }
    let count = client.query_json(&soql::count_all(object)).await?;
    check.rows = count.get("totalSize").and_then(|v| v.as_u64());
    Ok(check)
}
