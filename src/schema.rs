//! STUB (being replaced by its owner): describe field types → Arrow types.
use arrow::datatypes::{DataType, SchemaRef};
use crate::describe::Field;

/// The Arrow type a field is written as (spec "Output").
pub fn arrow_type(_field: &Field) -> DataType {
    unimplemented!("schema stub")
}
/// `arrow_type` as text for `objects NAME`.
pub fn arrow_type_name(field: &Field) -> String {
    arrow_type(field).to_string()
}
/// The Arrow schema of a field list, in order; column names are the API names.
pub fn arrow_schema(_fields: &[Field]) -> SchemaRef {
    unimplemented!("schema stub")
}
