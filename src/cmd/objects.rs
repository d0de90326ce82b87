//! `objects`: the queryable objects, or one object's fields with their Arrow types.

use serde::Serialize;

use crate::config::cli;
use crate::config::{self, ProcessEnv};
use crate::decode::schema;
use crate::salesforce::SalesforceClient;
use crate::salesforce::soql::Identifier;

use super::{Failure, connect};

pub(super) async fn objects(args: &cli::ObjectsArgs) -> Result<(), Failure> {
    let file = config::ConfigFile::load(args.connection.config.as_deref())?;
    let connection = config::connection(&args.connection, &file, &ProcessEnv)?;
    let limits = config::limits(&args.limits, &file)?;
    if let Some(name) = &args.name {
        Identifier::parse(name).map_err(config::ConfigError::from)?;
    }
    let client = connect(&connection, &limits).await?;
    match &args.name {
        None => list_objects(&client, args.json).await,
        Some(name) => describe_object(&client, name, args.json).await,
    }
}

async fn list_objects(client: &SalesforceClient, json: bool) -> Result<(), Failure> {
    let mut objects: Vec<_> = client
        .describe_global()
        .await?
        .into_iter()
        .filter(|o| o.is_extractable())
        .collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&objects).expect("serialisable")
        );
        return Ok(());
    }
    println!("{:<40} {:<8} LABEL", "OBJECT", "CUSTOM");
    for o in objects {
        println!(
            "{:<40} {:<8} {}",
            o.name,
            if o.custom { "yes" } else { "" },
            o.label
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct FieldRow {
    name: String,
    salesforce_type: serde_json::Value,
    arrow_type: String,
    custom: bool,
    nillable: bool,
    compound_field_name: Option<String>,
}

async fn describe_object(client: &SalesforceClient, name: &str, json: bool) -> Result<(), Failure> {
    let describe = client.describe(name).await?;
    let rows: Vec<FieldRow> = describe
        .fields
        .iter()
        .map(|f| FieldRow {
            name: f.name.clone(),
            salesforce_type: serde_json::to_value(&f.field_type).expect("serialisable"),
            arrow_type: schema::arrow_type_name(f),
            custom: f.custom,
            nillable: f.nillable,
            compound_field_name: f.compound_field_name.clone(),
        })
        .collect();
    if json {
        let doc = serde_json::json!({"object": describe.name, "queryable": describe.queryable, "fields": rows});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialisable")
        );
        return Ok(());
    }
    println!("{} ({} fields)", describe.name, rows.len());
    println!("{:<40} {:<16} PARQUET (ARROW)", "FIELD", "SALESFORCE");
    for r in rows {
        let sf = r.salesforce_type.as_str().unwrap_or("?").to_string();
        println!("{:<40} {:<16} {}", r.name, sf, r.arrow_type);
    }
    Ok(())
}
