-- Loading sfbackfill output into DuckDB.
-- Run after `cargo run -- demo` from the repository root:  duckdb < examples/duckdb.sql

-- Every day of an object is one Hive-style partition; `date` becomes a column.
-- `union_by_name` lines columns up by name: the files of one object differ in their columns
-- when fields changed in the org between runs (README, "Schema drift"): a field the org hid is
-- a NULL column in later files, an added field is missing from earlier ones (NULL there), and
-- a type that widened (an int that became a long) is read as the wider type. Without it,
-- DuckDB takes the first file's columns and refuses a query naming a later one. pyarrow does
-- the same with a unified schema:
--   schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
--   ds.dataset("sfbackfill-demo/Invoice__c", format="parquet", partitioning="hive", schema=schema)
CREATE OR REPLACE VIEW invoices AS
SELECT * FROM read_parquet('sfbackfill-demo/Invoice__c/date=*/*.parquet',
                           hive_partitioning = true, union_by_name = true);

-- Types arrive exact: Amount__c is DECIMAL(16,2), CreatedDate is TIMESTAMP WITH TIME ZONE.
DESCRIBE invoices;

SELECT date, count(*) AS rows, sum(Amount__c) AS amount
FROM invoices
GROUP BY date
ORDER BY date
LIMIT 10;

-- Multi-select picklists are lists: unnest them.
SELECT tag, count(*) AS n
FROM (SELECT unnest(Tags__c) AS tag FROM invoices)
GROUP BY tag
ORDER BY n DESC;

-- A re-pulled window replaces its files, so a day is never counted twice. `sfbackfill sync`
-- (docs/sync.md) adds `sync-<run>-<step>.parquet` files beside the backfill's `part-*.parquet`,
-- and the same record then appears more than once: in a backfill file and a sync file, in two
-- syncs when it changed twice, again when the lookback or a `--full-every` pass re-reads it.
-- Keep the newest version of each Id: the highest SystemModstamp (sync's default cursor; put
-- yours first if you chose another), then LastModifiedDate, then the file name, so two copies
-- of one version resolve the same way on every run (a sync file name sorts after `part-`, and
-- later runs after earlier ones). NULLS LAST: a backfill made with a `--fields` list without
-- SystemModstamp has no value there, and a sync copy, which always has it, is newer.
-- `union_by_name` lines columns up by name, not position (a sync writes Id and its cursor
-- first), and fills a column some files lack (a field list changed between runs, or a field
-- the org added) with NULL.
-- With `--include-deleted`, a deleted record's newest version has IsDeleted = true: the last
-- line drops it.
-- `sfbackfill compact --out sfbackfill-demo` (docs/compact.md) keeps exactly the rows this view
-- keeps (same order: cursor, then SystemModstamp, then the later file) and leaves one file per
-- day folder; after it, and until the next sync, a plain read_parquet sees each record once
-- (add `--drop-deleted` to drop deleted ones too). The view stays correct either way: a sync
-- after a compaction adds new versions beside the compacted files.
--
-- Checked with DuckDB 2.0.1 (the Python package) against `sfbackfill fake-org`: a backfill of
-- June 2025 of Account and Invoice__c with --all-fields (the demo's), 3,000 rows modified, a
-- sync from 2025-07-01, 3,000 more modified, a second sync (whose 5-minute lookback re-read the
-- first changes). Account then held 10,397 rows in 212 files for 8,519 Ids; 1,819 Ids were in
-- more than one file, 1,486 (Id, SystemModstamp) versions twice. The statement below returned
-- 8,519 rows, one per Id, and each one's SystemModstamp, LastModifiedDate and Name equal the
-- org's current record (all 8,519 Accounts with SystemModstamp since June 2025, read by REST).
-- The same check with the order turned (oldest first) finds 392 rows that do not match.
CREATE OR REPLACE VIEW accounts_current AS
SELECT * EXCLUDE (version, filename) FROM (
  SELECT *,
         row_number() OVER (
           PARTITION BY Id
           ORDER BY SystemModstamp DESC NULLS LAST, LastModifiedDate DESC NULLS LAST, filename DESC
         ) AS version
  FROM read_parquet('sfbackfill-demo/Account/date=*/*.parquet',
                    hive_partitioning = true, union_by_name = true, filename = true)
)
WHERE version = 1 AND NOT coalesce(IsDeleted, false);

SELECT count(*) AS accounts FROM accounts_current;
