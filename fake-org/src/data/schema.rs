//! The fake org's object definitions: every object's fields, their describe metadata and how
//! their values are generated.
//!
//! Owns: the field tables and the describe JSON built from them. Invariants: every object has
//! `Id` at index 0; compound fields (`address`, `location`) come after their components and
//! name them in `components`; a component names its compound in `compound`.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use super::values::Gen;

/// A field's describe `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    Reference,
    String,
    Textarea,
    Email,
    Phone,
    Url,
    Picklist,
    Multipicklist,
    EncryptedString,
    Boolean,
    Int,
    Long,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    Time,
    Address,
    Location,
}

impl FieldType {
    /// The describe `type` spelling.
    pub fn api_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::EncryptedString => "encryptedstring",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Time => "time",
            FieldType::Address => "address",
            FieldType::Location => "location",
        }
    }

    /// The type name Salesforce uses in filter error messages.
    pub fn filter_type_name(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "id",
            FieldType::Boolean => "boolean",
            FieldType::Int => "integer",
            FieldType::Long => "long",
            FieldType::Double | FieldType::Percent => "double",
            FieldType::Currency => "currency",
            FieldType::Date => "date",
            FieldType::DateTime => "dateTime",
            FieldType::Time => "time",
            _ => "string",
        }
    }

    fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Long => "xsd:long",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            FieldType::Time => "xsd:time",
            FieldType::Address => "urn:address",
            FieldType::Location => "urn:location",
            _ => "xsd:string",
        }
    }

    /// Numbers compare and aggregate as decimals.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int
                | FieldType::Long
                | FieldType::Double
                | FieldType::Currency
                | FieldType::Percent
        )
    }
}

/// One field of an object, with the metadata its describe entry reports.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: String,
    pub ftype: FieldType,
    pub length: u32,
    pub precision: u8,
    pub scale: u8,
    pub nillable: bool,
    pub custom: bool,
    pub auto_number: bool,
    /// Index of the compound field this one is a component of.
    pub compound: Option<usize>,
    /// For a compound field: (JSON key, component index).
    pub components: Vec<(&'static str, usize)>,
    /// Target object of a reference (`User` or one of the org's objects).
    pub reference_to: Option<&'static str>,
    pub relationship_name: Option<&'static str>,
    pub picklist: &'static [&'static str],
    /// Percent of rows where a nillable field is null.
    pub null_pct: u8,
    pub generator: Gen,
}

impl Field {
    /// Long text areas (more than 255 characters) cannot be filtered, sorted or grouped.
    pub fn is_long_text(&self) -> bool {
        self.ftype == FieldType::Textarea && self.length > 255
    }

    pub fn is_compound(&self) -> bool {
        matches!(self.ftype, FieldType::Address | FieldType::Location)
    }

    pub fn filterable(&self) -> bool {
        !self.is_long_text() && !self.is_compound()
    }

    pub fn sortable(&self) -> bool {
        !self.is_long_text() && !self.is_compound() && self.ftype != FieldType::Multipicklist
    }

    pub fn groupable(&self) -> bool {
        self.sortable()
            && !matches!(
                self.ftype,
                FieldType::Double
                    | FieldType::Currency
                    | FieldType::Percent
                    | FieldType::DateTime
                    | FieldType::Time
                    | FieldType::EncryptedString
            )
    }

    pub fn aggregatable(&self) -> bool {
        self.sortable()
            && !matches!(
                self.ftype,
                FieldType::Boolean | FieldType::EncryptedString | FieldType::Time
            )
    }

    fn digits(&self) -> u8 {
        if matches!(self.ftype, FieldType::Int | FieldType::Long) {
            self.precision
        } else {
            0
        }
    }

    /// The §3.2 describe entry.
    pub fn describe(&self, fields: &[Field]) -> Json {
        let (precision, scale) = match self.ftype {
            FieldType::Double | FieldType::Currency | FieldType::Percent => {
                (self.precision, self.scale)
            }
            _ => (0, 0),
        };
        let listed = matches!(self.ftype, FieldType::Picklist | FieldType::Multipicklist);
        let picklist: Vec<Json> = self
            .picklist
            .iter()
            .filter(|_| listed)
            .map(|v| json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v}))
            .collect();
        let byte_length = if matches!(self.ftype, FieldType::Id | FieldType::Reference) {
            // Ids are ASCII: Salesforce reports 18 bytes, not 3 per character.
            self.length
        } else if self.ftype.is_numeric()
            || matches!(
                self.ftype,
                FieldType::Boolean
                    | FieldType::Date
                    | FieldType::DateTime
                    | FieldType::Time
                    | FieldType::Address
                    | FieldType::Location
            )
        {
            0
        } else {
            self.length * 3
        };
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.ftype.api_name(),
            "soapType": self.ftype.soap_type(),
            "length": self.length,
            "byteLength": byte_length,
            "precision": precision,
            "scale": scale,
            "digits": self.digits(),
            "nillable": self.nillable,
            "calculated": false,
            "calculatedFormula": null,
            "autoNumber": self.auto_number,
            "compoundFieldName": self.compound.map(|i| fields[i].name),
            "custom": self.custom,
            "externalId": false,
            "unique": false,
            "idLookup": self.ftype == FieldType::Id,
            "nameField": self.name == "Name",
            "filterable": self.filterable(),
            "sortable": self.sortable(),
            "groupable": self.groupable(),
            "aggregatable": self.aggregatable(),
            "createable": !matches!(self.ftype, FieldType::Id) && self.generator.is_user_data(),
            "updateable": !matches!(self.ftype, FieldType::Id) && self.generator.is_user_data(),
            "referenceTo": self.reference_to.map(|t| vec![t]).unwrap_or_default(),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": false,
            "picklistValues": picklist,
            "deprecatedAndHidden": false,
            "encrypted": self.ftype == FieldType::EncryptedString,
            "highScaleNumber": false,
        })
    }
}

/// One object: its names, key prefix and fields.
#[derive(Debug, Clone)]
pub struct ObjectSchema {
    pub name: &'static str,
    pub label: &'static str,
    pub label_plural: &'static str,
    pub key_prefix: &'static str,
    pub custom: bool,
    pub fields: Vec<Field>,
    by_lower: HashMap<String, usize>,
    by_relationship: HashMap<String, usize>,
}

impl ObjectSchema {
    /// The index of a field, case-insensitively.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    /// The reference field whose relationship is named `name` (`Owner` → `OwnerId`).
    pub fn relationship_index(&self, name: &str) -> Option<usize> {
        self.by_relationship
            .get(&name.to_ascii_lowercase())
            .copied()
    }

    /// The §3.2 describe body.
    pub fn describe(&self, api_version: &str) -> Json {
        let base = format!("/services/data/v{api_version}/sobjects/{}", self.name);
        let fields: Vec<Json> = self
            .fields
            .iter()
            .map(|f| f.describe(&self.fields))
            .collect();
        let tracked = self.field_index("SystemModstamp").is_some();
        json!({
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "queryable": true,
            "replicateable": tracked,
            "retrieveable": true,
            "searchable": tracked,
            "createable": tracked,
            "updateable": tracked,
            "deletable": tracked,
            "deprecatedAndHidden": false,
            "customSetting": false,
            "fields": fields,
            "childRelationships": [],
            "recordTypeInfos": [],
            "urls": {
                "sobject": base,
                "describe": format!("{base}/describe"),
                "rowTemplate": format!("{base}/{{ID}}"),
            },
        })
    }
}

/// Builds an object's field list; compound fields are wired to their components by name.
pub(super) struct SchemaBuilder {
    name: &'static str,
    label: &'static str,
    label_plural: &'static str,
    key_prefix: &'static str,
    custom: bool,
    fields: Vec<Field>,
}

impl SchemaBuilder {
    pub fn new(
        name: &'static str,
        label: &'static str,
        label_plural: &'static str,
        key_prefix: &'static str,
    ) -> Self {
        let custom = name.ends_with("__c");
        let mut b = SchemaBuilder {
            name,
            label,
            label_plural,
            key_prefix,
            custom,
            fields: Vec::new(),
        };
        b.push("Id", FieldType::Id, Gen::Id).not_null().len(18);
        b
    }

    /// Adds a field with defaults for its type; chain the setters to adjust it.
    pub fn push(&mut self, name: &'static str, ftype: FieldType, generator: Gen) -> &mut Field {
        let (length, precision, scale) = match ftype {
            FieldType::Id | FieldType::Reference => (18, 0, 0),
            FieldType::String | FieldType::Picklist | FieldType::Url => (255, 0, 0),
            FieldType::Email => (80, 0, 0),
            FieldType::Phone => (40, 0, 0),
            FieldType::Textarea => (255, 0, 0),
            FieldType::Multipicklist => (4099, 0, 0),
            FieldType::EncryptedString => (175, 0, 0),
            FieldType::Int => (0, 9, 0),
            FieldType::Long => (0, 18, 0),
            FieldType::Double => (0, 18, 2),
            FieldType::Currency => (0, 18, 2),
            FieldType::Percent => (0, 5, 2),
            _ => (0, 0, 0),
        };
        let custom = name.ends_with("__c") || name.ends_with("__s");
        self.fields.push(Field {
            name,
            label: label_of(name),
            ftype,
            length,
            precision,
            scale,
            nillable: !matches!(ftype, FieldType::Boolean | FieldType::Id),
            custom,
            auto_number: false,
            compound: None,
            components: Vec::new(),
            reference_to: None,
            relationship_name: None,
            picklist: &[],
            null_pct: 0,
            generator,
        });
        self.fields.last_mut().expect("just pushed")
    }

    /// The index the next pushed field will get.
    pub fn fields_len(&self) -> usize {
        self.fields.len()
    }

    /// A compound field over already-added components: (JSON key, component field name).
    pub fn compound(
        &mut self,
        name: &'static str,
        ftype: FieldType,
        parts: &[(&'static str, &'static str)],
    ) {
        let at = self.fields.len();
        let components: Vec<(&'static str, usize)> = parts
            .iter()
            .map(|(key, field)| {
                let i = self
                    .fields
                    .iter()
                    .position(|f| f.name == *field)
                    .expect("component defined before its compound");
                (*key, i)
            })
            .collect();
        for (_, i) in &components {
            self.fields[*i].compound = Some(at);
        }
        self.push(name, ftype, Gen::Compound).components = components;
    }

    /// Marks already-added name parts (`FirstName`, `LastName`) as components of the
    /// `Name` field just added, for their describe `compoundFieldName` (§3.2). `Name` stays
    /// a plain `string`: it is not an address or location object in query results.
    pub fn name_parts(&mut self, parts: &[&'static str]) {
        let name = self
            .fields
            .iter()
            .position(|f| f.name == "Name")
            .expect("Name defined before its parts are marked");
        for part in parts {
            let i = self
                .fields
                .iter()
                .position(|f| f.name == *part)
                .expect("name part defined");
            self.fields[i].compound = Some(name);
        }
    }

    pub fn build(self) -> ObjectSchema {
        let by_lower = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        let by_relationship = self
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.relationship_name.map(|r| (r.to_ascii_lowercase(), i)))
            .collect();
        ObjectSchema {
            name: self.name,
            label: self.label,
            label_plural: self.label_plural,
            key_prefix: self.key_prefix,
            custom: self.custom,
            fields: self.fields,
            by_lower,
            by_relationship,
        }
    }
}

impl Field {
    pub fn not_null(&mut self) -> &mut Self {
        self.nillable = false;
        self
    }
    pub fn nulls(&mut self, pct: u8) -> &mut Self {
        self.null_pct = pct;
        self
    }
    pub fn len(&mut self, length: u32) -> &mut Self {
        self.length = length;
        self
    }
    pub fn num(&mut self, precision: u8, scale: u8) -> &mut Self {
        self.precision = precision;
        self.scale = scale;
        self
    }
    pub fn picks(&mut self, values: &'static [&'static str]) -> &mut Self {
        self.picklist = values;
        self
    }
    pub fn refers(&mut self, target: &'static str, relationship: &'static str) -> &mut Self {
        self.reference_to = Some(target);
        self.relationship_name = Some(relationship);
        self
    }
    pub fn label(&mut self, label: &str) -> &mut Self {
        self.label = label.to_string();
        self
    }
    pub fn auto_number(&mut self) -> &mut Self {
        self.auto_number = true;
        self.nillable = false;
        self
    }
}

/// `BillingPostalCode` → `Billing Postal Code`; `Due_Date__c` → `Due Date`.
fn label_of(name: &str) -> String {
    let base = name
        .trim_end_matches("__c")
        .trim_end_matches("__s")
        .replace("__", " ")
        .replace('_', " ");
    let mut out = String::with_capacity(base.len() + 4);
    let mut prev_lower = false;
    for c in base.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    let trimmed = out.trim_end_matches(" Id").to_string();
    if trimmed.is_empty() { out } else { trimmed }
}
