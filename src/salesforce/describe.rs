//! The engine's view of Salesforce metadata: describeGlobal and sObject describe.
//!
//! Owns the serde shapes of those two responses and the field-type vocabulary the rest of the
//! engine speaks (`FieldType`). It does not own the mapping to Arrow types (`schema`) nor the
//! HTTP calls that fetch the JSON (the client, `salesforce`).
//!
//! Invariant: a `Field` is always built from a describe response, so its `name` is a real API
//! name of the object and safe to put into SOQL after `soql::Identifier` validation.

use serde::{Deserialize, Serialize};

/// One entry of describeGlobal's `sobjects` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalObject {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub queryable: bool,
    #[serde(default)]
    pub replicateable: bool,
}

impl GlobalObject {
    /// Objects an extractor can sensibly read: queryable, and not change events, platform
    /// events or external objects (salesforce-api.md §3.1).
    pub fn is_extractable(&self) -> bool {
        self.queryable
            && !self.name.ends_with("ChangeEvent")
            && !self.name.ends_with("__e")
            && !self.name.ends_with("__x")
    }
}

/// The `GET /sobjects` body.
#[derive(Debug, Clone, Deserialize)]
pub struct DescribeGlobal {
    pub sobjects: Vec<GlobalObject>,
}

/// The Salesforce `type` of a field, as describe reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Id,
    Reference,
    String,
    Textarea,
    Email,
    Phone,
    Url,
    Picklist,
    Combobox,
    #[serde(rename = "encryptedstring")]
    EncryptedString,
    #[serde(rename = "datacategorygroupreference")]
    DataCategoryGroupReference,
    Multipicklist,
    Boolean,
    Int,
    Long,
    Double,
    Currency,
    Percent,
    Date,
    Datetime,
    Time,
    Base64,
    Address,
    Location,
    #[serde(rename = "anyType")]
    AnyType,
    Complexvalue,
    Json,
    /// A type this version of the tool does not know; written as text.
    #[serde(other)]
    Unknown,
}

/// One `fields[]` entry of an sObject describe, trimmed to what the extractor uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub length: u32,
    #[serde(default)]
    pub precision: u32,
    #[serde(default)]
    pub scale: i32,
    #[serde(default)]
    pub digits: u32,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub compound_field_name: Option<String>,
    #[serde(default)]
    pub filterable: bool,
    #[serde(default)]
    pub sortable: bool,
    #[serde(default)]
    pub groupable: bool,
}

impl Field {
    /// A compound parent (`BillingAddress`, a geolocation) whose components are also fields.
    pub fn is_compound(&self) -> bool {
        matches!(self.field_type, FieldType::Address | FieldType::Location)
    }

    /// Date-time fields can serve as the cursor of a window or a sync.
    pub fn is_datetime(&self) -> bool {
        self.field_type == FieldType::Datetime
    }
}

/// The `GET /sobjects/{Name}/describe` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDescribe {
    pub name: String,
    #[serde(default)]
    pub queryable: bool,
    #[serde(default)]
    pub replicateable: bool,
    pub fields: Vec<Field>,
}

impl ObjectDescribe {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}
