//! Bulk API 2.0 results (CSV, salesforce-api.md §7.1) into the same typed Arrow batches as
//! REST pages.
//!
//! Owns reading one results page: the header row names the columns (matched to the
//! decoder's fields as JSON keys are: exact spelling, else ASCII case-insensitively; a field
//! with no column is null, a column with no field is skipped), then each row's cells go to the
//! same [`ColumnBuilder`]s the JSON reader feeds, as text. An empty cell is a null; NUL bytes
//! are stripped before parsing; quoted values may hold commas, `""` and newlines.
//!
//! Invariants: a page decodes completely or not at all; a body that does not end with a line
//! end, or holds fewer rows than `Sforce-NumberOfRecords` said, is
//! [`DecodeError::Truncated`] (transient: fetch the page again).

use std::borrow::Cow;

use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::columns::ColumnBuilder;
use super::{DecodeError, PageDecoder};

impl PageDecoder {
    /// Decodes one Bulk results page; `expected` is its `Sforce-NumberOfRecords`, if sent.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] for a cut-off body, [`DecodeError::Malformed`] for a body
    /// that is not CSV with a header row, [`DecodeError::Unsupported`] for a compound field
    /// (Bulk does not serve them), [`DecodeError::Value`] for a value that does not fit.
    pub fn decode_csv(
        &self,
        body: &[u8],
        expected: Option<usize>,
    ) -> Result<RecordBatch, DecodeError> {
        let body = without_nul(body);
        if !body.is_empty() && !body.ends_with(b"\n") {
            return Err(DecodeError::Truncated { bytes: body.len() });
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(&body[..]);
        let header = reader
            .byte_headers()
            .map_err(|e| DecodeError::Malformed(format!("the CSV header row: {e}")))?
            .clone();
        let slots = self.columns_of(&header)?;
        let rows = expected.unwrap_or(body.len() / 64 + 16);
        let mut columns = self.builders(rows, body.len() / self.names.len().max(1))?;
        let mut record = csv::ByteRecord::new();
        let mut count = 0;
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) => {
                    return Err(DecodeError::Truncated { bytes: body.len() });
                }
                Err(e) => {
                    return Err(DecodeError::Malformed(format!(
                        "CSV row {}: {e}",
                        count + 1
                    )));
                }
            }
            count += 1;
            self.push_row(&record, &slots, &mut columns, count)?;
        }
        if expected.is_some_and(|n| n != count) {
            return Err(DecodeError::Truncated { bytes: body.len() });
        }
        let arrays = columns.iter_mut().map(ColumnBuilder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(
            RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
                .expect("builders follow the schema and hold one value per record"),
        )
    }

    /// For each of the decoder's fields, the CSV column that holds it, if any.
    fn columns_of(&self, header: &csv::ByteRecord) -> Result<Vec<Option<usize>>, DecodeError> {
        let names: Vec<&[u8]> = header.iter().collect();
        Ok(self
            .names
            .iter()
            .map(|name| {
                names
                    .iter()
                    .position(|h| *h == &name[..])
                    .or_else(|| names.iter().position(|h| h.eq_ignore_ascii_case(name)))
            })
            .collect())
    }

    fn builders(&self, rows: usize, text_bytes: usize) -> Result<Vec<ColumnBuilder>, DecodeError> {
        self.schema
            .fields()
            .iter()
            .map(|f| {
                let builder = ColumnBuilder::new(f.data_type(), rows, text_bytes)
                    .expect("checked in PageDecoder::new");
                match builder {
                    ColumnBuilder::Struct(_) => Err(DecodeError::Unsupported {
                        field: f.name().clone(),
                        reason: "Bulk API results hold no compound fields".into(),
                    }),
                    b => Ok(b),
                }
            })
            .collect()
    }

    fn push_row(
        &self,
        record: &csv::ByteRecord,
        slots: &[Option<usize>],
        columns: &mut [ColumnBuilder],
        number: usize,
    ) -> Result<(), DecodeError> {
        for ((column, slot), name) in columns.iter_mut().zip(slots).zip(&self.names) {
            let cell = slot.and_then(|i| record.get(i)).unwrap_or_default();
            if cell.is_empty() {
                column.push_null();
                continue;
            }
            let field = || String::from_utf8_lossy(name).into_owned();
            let text = std::str::from_utf8(cell).map_err(|_| {
                DecodeError::Malformed(format!("record {number}, field `{}`: not UTF-8", field()))
            })?;
            column
                .push_text(text)
                .map_err(|reason| DecodeError::Value {
                    record: number,
                    field: field(),
                    text: text.chars().take(80).collect(),
                    reason,
                })?;
        }
        Ok(())
    }
}

/// The body without NUL bytes, which Salesforce may send inside values (§7.1).
fn without_nul(body: &[u8]) -> Cow<'_, [u8]> {
    if body.contains(&0) {
        Cow::Owned(body.iter().copied().filter(|&b| b != 0).collect())
    } else {
        Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{field, page};
    use super::*;
    use crate::salesforce::describe::{Field, FieldType};

    fn fields() -> Vec<Field> {
        vec![
            field("Id", FieldType::Id),
            field("SystemModstamp", FieldType::Datetime),
            field("Name", FieldType::String),
            field("Description", FieldType::Textarea),
            field("IsClosed", FieldType::Boolean),
            field("Amount__c", FieldType::Currency),
            field("Rate__c", FieldType::Double),
            field("Seats__c", FieldType::Int),
            field("Due__c", FieldType::Date),
            field("At__c", FieldType::Time),
            field("Tags__c", FieldType::Multipicklist),
            field("OwnerId", FieldType::Reference),
        ]
    }

    #[test]
    fn csv_rows_decode_to_the_same_batch_as_the_json_records() {
        let d = PageDecoder::new(&fields()).unwrap();
        let json = page(&[
            r#""Id":"a01000000000001AAA","SystemModstamp":"2025-03-10T07:15:00.042+0000","Name":"Acme, \"West\"","Description":"two\nlines","IsClosed":true,"Amount__c":1234.5,"Rate__c":1.5E7,"Seats__c":12,"Due__c":"2025-03-11","At__c":"07:15:00.000Z","Tags__c":"A;B","OwnerId":"005000000000001AAA""#,
            r#""Id":"a01000000000002AAA","SystemModstamp":"2025-03-10T08:00:00.000+0000","Name":null,"Description":null,"IsClosed":false,"Amount__c":null,"Rate__c":null,"Seats__c":null,"Due__c":null,"At__c":null,"Tags__c":null,"OwnerId":null"#,
        ]);
        let csv = "\"Id\",\"SystemModstamp\",\"Name\",\"Description\",\"IsClosed\",\"Amount__c\",\"Rate__c\",\"Seats__c\",\"Due__c\",\"At__c\",\"Tags__c\",\"OwnerId\"\n\
            \"a01000000000001AAA\",\"2025-03-10T07:15:00.042Z\",\"Acme, \"\"West\"\"\",\"two\nlines\",\"true\",\"1234.5\",\"1.5E7\",\"12\",\"2025-03-11\",\"07:15:00.000Z\",\"A;B\",\"005000000000001AAA\"\n\
            \"a01000000000002AAA\",\"2025-03-10T08:00:00.000Z\",,,\"false\",,,,,,,\n";
        let from_json = d.decode(json.as_bytes()).unwrap().batch;
        let from_csv = d.decode_csv(csv.as_bytes(), Some(2)).unwrap();
        assert_eq!(from_csv, from_json);
    }

    #[test]
    fn columns_match_by_name_in_any_order_and_nul_bytes_are_stripped() {
        let d = PageDecoder::new(&fields()[..3]).unwrap();
        let csv = "\"name\",\"Extra\",\"Id\",\"SystemModstamp\"\n\"Ac\0me\",\"x\",\"a01000000000001AAA\",\"2025-03-10T07:15:00.000Z\"\n";
        let json = page(&[
            r#""Id":"a01000000000001AAA","SystemModstamp":"2025-03-10T07:15:00.000+0000","Name":"Acme""#,
        ]);
        assert_eq!(
            d.decode_csv(csv.as_bytes(), None).unwrap(),
            d.decode(json.as_bytes()).unwrap().batch
        );
    }

    #[test]
    fn a_cut_off_page_is_truncated_not_short() {
        let d = PageDecoder::new(&fields()[..3]).unwrap();
        let whole = "\"Id\",\"SystemModstamp\",\"Name\"\n\"a01000000000001AAA\",\"2025-03-10T07:15:00.000Z\",\"x\"\n\"a01000000000002AAA\",\"2025-03-10T07:15:00.000Z\",\"y\"\n";
        assert_eq!(
            d.decode_csv(whole.as_bytes(), Some(2)).unwrap().num_rows(),
            2
        );
        for cut in [whole.len() - 1, whole.len() - 10, 40] {
            let err = d.decode_csv(&whole.as_bytes()[..cut], Some(2)).unwrap_err();
            assert!(err.is_transient(), "cut at {cut}: {err}");
        }
        let one_row = whole.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";
        assert!(
            d.decode_csv(one_row.as_bytes(), Some(2))
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn a_bad_value_names_the_record_and_field() {
        let d = PageDecoder::new(&fields()[..2]).unwrap();
        let csv = "\"Id\",\"SystemModstamp\"\n\"a01000000000001AAA\",\"yesterday\"\n";
        let err = d.decode_csv(csv.as_bytes(), None).unwrap_err().to_string();
        assert!(err.contains("record 1, field `SystemModstamp`"), "{err}");
    }
}
