-- Loading sfbackfill output into DuckDB.
-- Run after `cargo run -- demo` from the repository root:  duckdb < examples/duckdb.sql

-- Every day of an object is one Hive-style partition; `date` becomes a column.
CREATE OR REPLACE VIEW invoices AS
SELECT * FROM read_parquet('sfbackfill-demo/Invoice__c/date=*/*.parquet', hive_partitioning = true);

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

-- A re-pulled window replaces its files, so a day is never counted twice. When you also load
-- incremental output, keep the newest version of each row:
SELECT * EXCLUDE (rn) FROM (
  SELECT *, row_number() OVER (PARTITION BY Id ORDER BY SystemModstamp DESC) AS rn
  FROM read_parquet('sfbackfill-demo/Account/date=*/*.parquet', hive_partitioning = true)
) WHERE rn = 1;
