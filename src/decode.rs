//! STUB (being replaced by its owner): Salesforce query JSON pages → Arrow record batches.
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crate::describe::Field;

/// One decoded query page.
#[derive(Debug)]
pub struct Page {
    pub batch: RecordBatch,
    pub total_size: u64,
    pub done: bool,
    pub next_records_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body ended before the JSON did (a cut-off transfer): fetch the page again.
    #[error("the page body is cut off after {bytes} bytes")]
    Truncated { bytes: usize },
    #[error("unsupported field `{field}`: {reason}")]
    Unsupported { field: String, reason: String },
    #[error("malformed page: {0}")]
    Malformed(String),
}

impl crate::error::UserFacing for DecodeError {
    fn exit_kind(&self) -> crate::error::ExitKind {
        crate::error::ExitKind::Failure
    }
}

impl DecodeError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DecodeError::Truncated { .. })
    }
}

/// Decodes pages of one field list. `Send + Sync`: shared by a chunk's tasks behind an `Arc`.
#[derive(Debug)]
pub struct PageDecoder {
    schema: SchemaRef,
}

impl PageDecoder {
    pub fn new(fields: &[Field]) -> Result<Self, DecodeError> {
        Ok(Self { schema: crate::schema::arrow_schema(fields) })
    }
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    pub fn decode(&self, _body: &[u8]) -> Result<Page, DecodeError> {
        unimplemented!("decode stub")
    }
}
