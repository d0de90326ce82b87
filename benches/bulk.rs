//! Bulk CSV results beside REST JSON pages: the same records, rendered by the fake org's own
//! writers (`exec::render_records` and `render_csv`), decoded by the engine into the same
//! typed Arrow batches.
//!
//! Run: `cargo bench --bench bulk`. Records/s come from `Throughput::Elements`; the bytes per
//! record of each format are printed first.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sfbackfill::decode::PageDecoder;
use sfbackfill::salesforce::describe::{Field, FieldType, ObjectDescribe};
use sfbackfill_fake_org::data::Org;
use sfbackfill_fake_org::exec;

/// Records per page: REST's largest page.
const RECORDS: usize = 2000;

/// The object's describe fields Bulk can serve (no compounds), as the engine reads them.
fn fields(org: &Org, object: &str) -> Vec<Field> {
    let json = serde_json::to_value(org.describe(object, "v62.0").expect("seeded object"))
        .expect("describe serialises");
    let describe: ObjectDescribe = serde_json::from_value(json).expect("engine reads describe");
    describe
        .fields
        .into_iter()
        .filter(|f| !matches!(f.field_type, FieldType::Address | FieldType::Location))
        .collect()
}

/// One REST page and one Bulk results page of the same `RECORDS` records of `object`.
fn pages(org: &Org, object: &str, fields: &[Field]) -> (Vec<u8>, Vec<u8>) {
    let list: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let soql = format!("SELECT {} FROM {object}", list.join(", "));
    let result = exec::execute(org, &soql, false).expect("query runs");
    let n = RECORDS.min(result.len());
    let mut json = format!("{{\"totalSize\":{n},\"done\":true,\"records\":[").into_bytes();
    result.render_records(0..n, "62.0", &mut json);
    json.extend_from_slice(b"]}");
    let mut csv = Vec::new();
    result.csv_header(&mut csv);
    result.render_csv(0..n, &mut csv);
    (json, csv)
}

fn decode(c: &mut Criterion) {
    let org = Org::generate(42, 1);
    for object in ["Account", "Invoice__c"] {
        let fields = fields(&org, object);
        let (json, csv) = pages(&org, object, &fields);
        let decoder = PageDecoder::new(&fields).expect("decoder");
        let from_json = decoder.decode(&json).expect("JSON decodes").batch;
        let from_csv = decoder
            .decode_csv(&csv, Some(RECORDS))
            .expect("CSV decodes");
        assert_eq!(from_json, from_csv, "{object}: the same batch from both");
        eprintln!(
            "{object}: {} fields, JSON {} bytes/record, CSV {} bytes/record",
            fields.len(),
            json.len() / RECORDS,
            csv.len() / RECORDS
        );
        let mut group = c.benchmark_group(object);
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_function("json page", |b| {
            b.iter(|| decoder.decode(black_box(&json)).expect("decodes"))
        });
        group.bench_function("csv page", |b| {
            b.iter(|| {
                decoder
                    .decode_csv(black_box(&csv), Some(RECORDS))
                    .expect("decodes")
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = bulk;
    config = Criterion::default().sample_size(20);
    targets = decode
}
criterion_main!(bulk);
