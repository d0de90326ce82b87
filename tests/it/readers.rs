//! The output read back by an independent reader (pyarrow), as a warehouse would read it.

use std::process::Command;

use crate::support::*;

const READ_WITH_PYARROW: &str = r#"
import json, sys
import pyarrow.dataset as ds
d = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
t = d.to_table()
print(json.dumps({"rows": t.num_rows, "types": {f.name: str(f.type) for f in d.schema}}))
"#;

fn pyarrow_available() -> bool {
    let ok = output(Command::new("python3").args(["-c", "import pyarrow"]))
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("SFBACKFILL_REQUIRE_PYARROW").is_some() {
        panic!("pyarrow is required (SFBACKFILL_REQUIRE_PYARROW is set) but cannot be imported");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_output_with_the_expected_rows_and_types() {
    if !pyarrow_available() {
        eprintln!("skipped: python3 with pyarrow is not installed (CI installs it)");
        return;
    }
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Invoice__c,Account",
            "--all-fields",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-31",
            "--out",
            out,
            "--rate-limit",
            "1000",
            "--progress",
            "off",
        ],
    )
    .await;
    assert_exit(&o, 0);
    for object in ["Invoice__c", "Account"] {
        let py = output(Command::new("python3").args([
            "-c",
            READ_WITH_PYARROW,
            dir.path().join(object).to_str().unwrap(),
        ]))
        .unwrap();
        assert!(
            py.status.success(),
            "pyarrow failed: {}",
            String::from_utf8_lossy(&py.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        assert_eq!(
            doc["rows"].as_u64().unwrap(),
            read_output(dir.path(), object).len() as u64,
            "{object}"
        );
        let types = &doc["types"];
        assert_eq!(types["Id"], "string");
        assert_eq!(types["CreatedDate"], "timestamp[ms, tz=UTC]");
        assert!(types["date"].as_str().is_some(), "hive partition column");
        if object == "Invoice__c" {
            assert!(
                types["Amount__c"]
                    .as_str()
                    .unwrap()
                    .starts_with("decimal128("),
                "{types}"
            );
            assert_eq!(types["Tags__c"], "list<item: string>");
            assert_eq!(types["Delivery_Window__c"], "time32[ms]");
            assert_eq!(types["Location__Latitude__s"], "double");
            assert_eq!(types["Due_Date__c"], "date32[day]");
        }
    }
}
