//! Decode and decode + write throughput on realistic 2,000-record query pages.
//!
//! Pages are generated here (no fake org), shaped exactly as Salesforce sends them: the
//! envelope, `attributes` per record, `nextRecordsUrl`, fields in select order, `null`s,
//! `+0000` date-times, escaped newlines in a textarea. Two objects: a 30-field `Account` (the
//! spec's performance contract: ≥ 300,000 records/s per core, decode + write) and an
//! all-types `Invoice__c`.
//!
//! A third figure per object is the cost of one small file (300 rows, a sparse object's day):
//! what a file costs whatever its rows.
//!
//! Run: `cargo bench --bench decode`. Records/s come from `Throughput::Elements`; the page
//! size printed first turns them into MB/s. Files go to `/dev/shm` where it exists, so the
//! figures are CPU, not disk.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sfbackfill::decode::PageDecoder;
use sfbackfill::salesforce::describe::{Field, FieldType};
use sfbackfill::write::{ChunkFileWriter, FileMeta};

/// Records per page: the REST API's default and maximum batch size.
const PAGE_RECORDS: usize = 2000;

/// Pages per chunk file in the decode + write bench: a file holds many pages in real runs,
/// so its footer and fsync are amortised as they are there.
const PAGES_PER_FILE: usize = 5;

fn field(name: &str, t: FieldType, precision: u32, scale: i32) -> Field {
    Field {
        name: name.into(),
        field_type: t,
        length: 255,
        precision,
        scale,
        digits: 0,
        nillable: true,
        custom: name.ends_with("__c"),
        calculated: false,
        compound_field_name: None,
        filterable: true,
        sortable: true,
        groupable: true,
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn id(rng: &mut fastrand::Rng, prefix: &str) -> String {
    let tail: String = (0..15)
        .map(|_| {
            let c = rng.u8(0..62);
            char::from(match c {
                0..=9 => b'0' + c,
                10..=35 => b'A' + c - 10,
                _ => b'a' + c - 36,
            })
        })
        .collect();
    json_str(&format!("{prefix}{tail}"))
}

fn pick<'a>(rng: &mut fastrand::Rng, options: &[&'a str]) -> &'a str {
    options[rng.usize(..options.len())]
}

/// `null` `null_percent` % of the time, else the value `make` draws.
fn maybe(
    rng: &mut fastrand::Rng,
    null_percent: u8,
    make: impl FnOnce(&mut fastrand::Rng) -> String,
) -> String {
    if rng.u8(0..100) < null_percent {
        "null".into()
    } else {
        make(rng)
    }
}

fn datetime(rng: &mut fastrand::Rng) -> String {
    format!(
        "\"2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000\"",
        rng.u8(1..13),
        rng.u8(1..29),
        rng.u8(0..24),
        rng.u8(0..60),
        rng.u8(0..60),
        rng.u16(0..1000)
    )
}

fn date(rng: &mut fastrand::Rng) -> String {
    format!("\"2024-{:02}-{:02}\"", rng.u8(1..13), rng.u8(1..29))
}

fn money(rng: &mut fastrand::Rng) -> String {
    match rng.u8(0..10) {
        0 => format!("{}.{}E{}", rng.u8(1..10), rng.u8(0..10), rng.u8(6..9)),
        1..=4 => format!("{}.{:02}", rng.u32(0..10_000_000), rng.u8(0..100)),
        _ => format!("{}.0", rng.u32(0..1_000_000)),
    }
}

const CITIES: [&str; 5] = ["San Francisco", "Paris", "São Paulo", "Tokyo", "New York"];
const STATES: [&str; 4] = ["CA", "NY", "TX", "WA"];

fn account_fields() -> Vec<Field> {
    use FieldType as T;
    let f = |n: &str, t| field(n, t, 0, 0);
    vec![
        f("Id", T::Id),
        f("IsDeleted", T::Boolean),
        f("MasterRecordId", T::Reference),
        f("Name", T::String),
        f("Type", T::Picklist),
        f("ParentId", T::Reference),
        f("BillingStreet", T::Textarea),
        f("BillingCity", T::String),
        f("BillingState", T::String),
        f("BillingPostalCode", T::String),
        f("BillingCountry", T::String),
        f("BillingLatitude", T::Double),
        f("BillingLongitude", T::Double),
        f("ShippingStreet", T::Textarea),
        f("ShippingCity", T::String),
        f("Phone", T::Phone),
        f("Website", T::Url),
        f("Industry", T::Picklist),
        field("AnnualRevenue", T::Currency, 18, 2),
        f("NumberOfEmployees", T::Int),
        f("OwnerId", T::Reference),
        f("CreatedDate", T::Datetime),
        f("CreatedById", T::Reference),
        f("LastModifiedDate", T::Datetime),
        f("LastModifiedById", T::Reference),
        f("SystemModstamp", T::Datetime),
        f("LastActivityDate", T::Date),
        f("Description", T::Textarea),
        f("Rating", T::Picklist),
        f("Active__c", T::Boolean),
    ]
}

fn account_record(rng: &mut fastrand::Rng) -> String {
    let record_id = id(rng, "001");
    let v: Vec<(&str, String)> = vec![
        ("Id", record_id.clone()),
        ("IsDeleted", "false".into()),
        ("MasterRecordId", "null".into()),
        (
            "Name",
            json_str(&format!("Account {} Holdings", rng.u32(..))),
        ),
        (
            "Type",
            maybe(rng, 20, |rng| {
                json_str(pick(rng, &["Customer - Direct", "Prospect", "Partner"]))
            }),
        ),
        ("ParentId", maybe(rng, 70, |rng| id(rng, "001"))),
        (
            "BillingStreet",
            json_str(&format!(
                "{} Mission St\nSuite {}",
                rng.u16(1..2000),
                rng.u16(1..900)
            )),
        ),
        ("BillingCity", json_str(pick(rng, &CITIES))),
        ("BillingState", json_str(pick(rng, &STATES))),
        (
            "BillingPostalCode",
            json_str(&format!("{:05}", rng.u32(0..100_000))),
        ),
        ("BillingCountry", json_str("USA")),
        (
            "BillingLatitude",
            maybe(rng, 30, |rng| format!("{:.6}", rng.f64() * 180.0 - 90.0)),
        ),
        (
            "BillingLongitude",
            maybe(rng, 30, |rng| format!("{:.6}", rng.f64() * 360.0 - 180.0)),
        ),
        (
            "ShippingStreet",
            maybe(rng, 50, |_| json_str("1 Market St")),
        ),
        (
            "ShippingCity",
            maybe(rng, 50, |rng| json_str(pick(rng, &CITIES))),
        ),
        (
            "Phone",
            json_str(&format!("(415) 555-{:04}", rng.u16(0..10_000))),
        ),
        (
            "Website",
            maybe(rng, 30, |_| json_str("https://www.example.com")),
        ),
        (
            "Industry",
            maybe(rng, 25, |rng| {
                json_str(pick(rng, &["Technology", "Banking", "Retail", "Energy"]))
            }),
        ),
        ("AnnualRevenue", maybe(rng, 20, money)),
        (
            "NumberOfEmployees",
            maybe(rng, 20, |rng| rng.u32(1..200_000).to_string()),
        ),
        ("OwnerId", id(rng, "005")),
        ("CreatedDate", datetime(rng)),
        ("CreatedById", id(rng, "005")),
        ("LastModifiedDate", datetime(rng)),
        ("LastModifiedById", id(rng, "005")),
        ("SystemModstamp", datetime(rng)),
        ("LastActivityDate", maybe(rng, 40, date)),
        (
            "Description",
            maybe(rng, 50, |_| {
                json_str(
                    "Key account.\nRenewal due in Q3; contact \"procurement\" first.\n\tNotes: net-30.",
                )
            }),
        ),
        (
            "Rating",
            maybe(rng, 40, |rng| json_str(pick(rng, &["Hot", "Warm", "Cold"]))),
        ),
        (
            "Active__c",
            if rng.bool() {
                "true".into()
            } else {
                "false".into()
            },
        ),
    ];
    record("Account", &record_id, &v)
}

fn invoice_fields() -> Vec<Field> {
    use FieldType as T;
    let f = |n: &str, t| field(n, t, 0, 0);
    vec![
        f("Id", T::Id),
        f("Name", T::String),
        field("Amount__c", T::Currency, 16, 2),
        f("Tax__c", T::Percent),
        f("Quantity__c", T::Double),
        f("Lines__c", T::Int),
        f("Sequence__c", T::Long),
        f("Due__c", T::Date),
        f("Paid__c", T::Datetime),
        f("DueTime__c", T::Time),
        f("Tags__c", T::Multipicklist),
        f("Geo__c", T::Location),
        f("ShippingAddress__c", T::Address),
        f("Notes__c", T::Textarea),
        f("Closed__c", T::Boolean),
        f("Email__c", T::Email),
        f("Account__c", T::Reference),
        f("Attachment__c", T::Base64),
        f("SystemModstamp", T::Datetime),
    ]
}

fn invoice_record(rng: &mut fastrand::Rng) -> String {
    let record_id = id(rng, "a01");
    let geo = format!(
        "{{\"latitude\":{:.5},\"longitude\":{:.5}}}",
        rng.f64() * 90.0,
        rng.f64() * -120.0
    );
    let address = format!(
        "{{\"city\":{},\"country\":\"USA\",\"countryCode\":null,\"geocodeAccuracy\":null,\"latitude\":null,\"longitude\":null,\"postalCode\":\"94105\",\"state\":{},\"stateCode\":null,\"street\":\"415 Mission St\\nFloor 3\"}}",
        json_str(pick(rng, &CITIES)),
        json_str(pick(rng, &STATES))
    );
    let v: Vec<(&str, String)> = vec![
        ("Id", record_id.clone()),
        (
            "Name",
            json_str(&format!("INV-{:06}", rng.u32(..1_000_000))),
        ),
        ("Amount__c", money(rng)),
        (
            "Tax__c",
            maybe(rng, 10, |rng| {
                format!("{}.{}", rng.u8(0..30), rng.u8(0..10))
            }),
        ),
        ("Quantity__c", format!("{:.3}", rng.f64() * 1000.0)),
        ("Lines__c", rng.u8(1..50).to_string()),
        ("Sequence__c", rng.u64(..1 << 50).to_string()),
        ("Due__c", date(rng)),
        ("Paid__c", maybe(rng, 30, datetime)),
        (
            "DueTime__c",
            format!("\"{:02}:{:02}:00.000Z\"", rng.u8(0..24), rng.u8(0..60)),
        ),
        (
            "Tags__c",
            maybe(rng, 30, |rng| {
                json_str(pick(
                    rng,
                    &["Urgent;Export", "Export", "Urgent;Export;Review"],
                ))
            }),
        ),
        ("Geo__c", maybe(rng, 30, |_| geo)),
        ("ShippingAddress__c", maybe(rng, 20, |_| address)),
        (
            "Notes__c",
            maybe(rng, 50, |_| json_str("Paid by wire.\nRef: 😀 \"Q3\"")),
        ),
        (
            "Closed__c",
            if rng.bool() {
                "true".into()
            } else {
                "false".into()
            },
        ),
        ("Email__c", json_str("billing@example.com")),
        ("Account__c", id(rng, "001")),
        (
            "Attachment__c",
            json_str("/services/data/v62.0/sobjects/Invoice__c/a01000000000001AAA/Attachment__c"),
        ),
        ("SystemModstamp", datetime(rng)),
    ];
    record("Invoice__c", &record_id, &v)
}

fn record(object: &str, quoted_id: &str, values: &[(&str, String)]) -> String {
    let id = quoted_id.trim_matches('"');
    let mut s = format!(
        "{{\"attributes\":{{\"type\":\"{object}\",\"url\":\"/services/data/v62.0/sobjects/{object}/{id}\"}}"
    );
    for (k, v) in values {
        s.push_str(&format!(",\"{k}\":{v}"));
    }
    s.push('}');
    s
}

fn page(rng: &mut fastrand::Rng, make: fn(&mut fastrand::Rng) -> String) -> Vec<u8> {
    let records: Vec<String> = (0..PAGE_RECORDS).map(|_| make(rng)).collect();
    format!(
        "{{\"totalSize\":{},\"done\":false,\"nextRecordsUrl\":\"/services/data/v62.0/query/01gD0000002HU6KIAW-2000\",\"records\":[{}]}}",
        PAGE_RECORDS * 10,
        records.join(",")
    )
    .into_bytes()
}

fn meta(object: &str) -> FileMeta {
    let now = chrono::Utc::now();
    FileMeta {
        object: object.into(),
        day: now.date_naive(),
        window_start: now,
        window_end: now,
        cursor_field: "SystemModstamp".into(),
        soql: format!("SELECT Id FROM {object}"),
        extracted_at: now,
        null_fields: Vec::new(),
    }
}

fn bench_object(
    c: &mut Criterion,
    object: &str,
    fields: &[Field],
    make: fn(&mut fastrand::Rng) -> String,
) {
    let mut rng = fastrand::Rng::with_seed(7);
    let body = page(&mut rng, make);
    let decoder = PageDecoder::new(fields).expect("bench fields are supported");
    assert_eq!(
        decoder.decode(&body).unwrap().batch.num_rows(),
        PAGE_RECORDS
    );
    eprintln!(
        "{object}: {} fields, page of {PAGE_RECORDS} records = {} bytes ({} bytes/record)",
        fields.len(),
        body.len(),
        body.len() / PAGE_RECORDS
    );

    let mut group = c.benchmark_group(object);
    group.throughput(Throughput::Elements(PAGE_RECORDS as u64));
    group.bench_function("decode", |b| {
        b.iter(|| black_box(decoder.decode(black_box(&body)).unwrap()))
    });
    let staging = staging_dir();
    group.throughput(Throughput::Elements((PAGE_RECORDS * PAGES_PER_FILE) as u64));
    group.bench_function("decode+write zstd", |b| {
        b.iter(|| {
            let mut w =
                ChunkFileWriter::create(staging.path(), decoder.schema(), &meta(object)).unwrap();
            for _ in 0..PAGES_PER_FILE {
                w.write(&decoder.decode(&body).unwrap().batch).unwrap();
            }
            let staged = w.finish().unwrap();
            std::fs::remove_file(&staged.path).unwrap();
            staged.bytes
        })
    });
    group.throughput(Throughput::Elements(SMALL_FILE_RECORDS as u64));
    let small = decoder
        .decode(&body)
        .unwrap()
        .batch
        .slice(0, SMALL_FILE_RECORDS);
    group.bench_function("write a small file", |b| {
        b.iter(|| {
            let mut w =
                ChunkFileWriter::create(staging.path(), decoder.schema(), &meta(object)).unwrap();
            w.write(&small).unwrap();
            let staged = w.finish().unwrap();
            std::fs::remove_file(&staged.path).unwrap();
            staged.bytes
        })
    });
    group.finish();
}

/// Rows of a sparse object's day file: what the per-file cost is measured on.
const SMALL_FILE_RECORDS: usize = 300;

/// Where files are written: a memory file system when there is one, so the figures are the
/// CPU's and not the disk's (each file is fsync'd, as in real runs).
fn staging_dir() -> tempfile::TempDir {
    match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm"),
        false => tempfile::tempdir(),
    }
    .expect("a temp dir")
}

fn benches(c: &mut Criterion) {
    bench_object(c, "Account", &account_fields(), account_record);
    bench_object(c, "Invoice__c", &invoice_fields(), invoice_record);
}

criterion_group! {
    name = decode;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(decode);
