//! The fake org's object definitions: every object's fields, their describe metadata and how
//! their values are generated.
//!
//! Owns: the field tables, the describe JSON built from them, and the field changes an admin
//! makes while the org runs (a field hidden from the Run-As user or deleted, shown again, added
//! or redefined: [`ObjectSchema::set_hidden`], [`ObjectSchema::define`]). Invariants: every
//! object has `Id` at index 0; compound fields (`address`, `location`) come after their
//! components and name them in `components`; a component names its compound in `compound`; a
//! field keeps its index for good (hiding does not remove it, a new field is appended), since
//! values are drawn from the index and the other fields' values must not move.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

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
    /// A blob: query results carry the relative URL that serves it, not its bytes (§3.3).
    Base64,
}

/// Every type, for looking one up by its spelling.
const ALL_TYPES: [FieldType; 22] = [
    FieldType::Id,
    FieldType::Reference,
    FieldType::String,
    FieldType::Textarea,
    FieldType::Email,
    FieldType::Phone,
    FieldType::Url,
    FieldType::Picklist,
    FieldType::Multipicklist,
    FieldType::EncryptedString,
    FieldType::Boolean,
    FieldType::Int,
    FieldType::Long,
    FieldType::Double,
    FieldType::Currency,
    FieldType::Percent,
    FieldType::Date,
    FieldType::DateTime,
    FieldType::Time,
    FieldType::Address,
    FieldType::Location,
    FieldType::Base64,
];

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
            FieldType::Base64 => "base64",
        }
    }

    /// The type of a describe `type` spelling, for the types the org has.
    pub fn from_api_name(name: &str) -> Option<FieldType> {
        ALL_TYPES.iter().copied().find(|t| t.api_name() == name)
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
            FieldType::Base64 => "xsd:base64Binary",
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
    /// Not visible to the Run-As user (field-level security) or deleted: absent from describe,
    /// `FIELDS()` and every SOQL clause, as if it did not exist.
    pub hidden: bool,
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
    /// The index of a visible field, case-insensitively.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.any_field_index(name)
            .filter(|&i| !self.fields[i].hidden)
    }

    /// The index of a field, hidden or not.
    fn any_field_index(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    /// The visible reference field whose relationship is named `name` (`Owner` → `OwnerId`).
    pub fn relationship_index(&self, name: &str) -> Option<usize> {
        self.by_relationship
            .get(&name.to_ascii_lowercase())
            .copied()
            .filter(|&i| !self.fields[i].hidden)
    }

    /// The fields the Run-As user sees, in describe order.
    pub fn visible_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.hidden)
    }

    /// Hides a field (field-level security taken away, or the field deleted) or shows it again.
    ///
    /// # Errors
    /// The object has no such field, or it is `Id` (which every object shows).
    pub fn set_hidden(&mut self, name: &str, hidden: bool) -> Result<(), String> {
        let Some(i) = self.any_field_index(name) else {
            return Err(format!("`{}` has no field `{name}`", self.name));
        };
        if i == 0 {
            return Err(format!("`{}.Id` cannot be hidden", self.name));
        }
        self.fields[i].hidden = hidden;
        Ok(())
    }

    /// Adds a field as an admin would, visible from now on: a new name is appended; the name
    /// of an existing field (hidden or not) redefines that field in place, as a field deleted
    /// and created again, or whose type was changed in Setup. Returns the field's index.
    ///
    /// # Errors
    /// The spec cannot be a field here: see [`FieldSpec::field`]; or it would redefine `Id`, a
    /// compound or a component of one.
    pub fn define(&mut self, spec: &FieldSpec) -> Result<usize, String> {
        let field = spec.field()?;
        match self.any_field_index(&spec.name) {
            Some(0) => Err(format!("`{}.Id` cannot be redefined", self.name)),
            Some(i) if self.fields[i].is_compound() || self.fields[i].compound.is_some() => Err(
                format!("`{}.{}` is part of a compound field", self.name, spec.name),
            ),
            Some(i) => {
                self.fields[i] = field;
                self.reindex();
                Ok(i)
            }
            None => {
                self.fields.push(field);
                self.reindex();
                Ok(self.fields.len() - 1)
            }
        }
    }

    fn reindex(&mut self) {
        (self.by_lower, self.by_relationship) = indexes(&self.fields);
    }

    /// The §3.2 describe body: the visible fields only.
    pub fn describe(&self, api_version: &str) -> Json {
        let base = format!("/services/data/v{api_version}/sobjects/{}", self.name);
        let fields: Vec<Json> = self
            .visible_fields()
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
        let (length, precision, scale) = default_size(ftype);
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
            hidden: false,
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
        let (by_lower, by_relationship) = indexes(&self.fields);
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

/// Field names (lower-case) and relationship names to field indices.
fn indexes(fields: &[Field]) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let by_lower = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
        .collect();
    let by_relationship = fields
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.relationship_name.map(|r| (r.to_ascii_lowercase(), i)))
        .collect();
    (by_lower, by_relationship)
}

/// A field an admin adds while the org runs ([`crate::FakeOrg::add_field`]): its API name, its
/// describe type and what the type needs. Every row gets a value drawn from its seed, like the
/// seeded fields' (so an edit redraws it), or a null in `null_pct` percent of rows.
///
/// ```
/// use sfbackfill_fake_org::{FieldSpec, FieldType};
/// let region = FieldSpec::new("Region__c", FieldType::Picklist).with_nulls(10);
/// let budget = FieldSpec::new("Budget__c", FieldType::Currency).with_number(16, 2);
/// # let _ = (region, budget);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// The API name; a name ending in `__c` is a custom field.
    pub name: String,
    pub ftype: FieldType,
    /// Characters, for text types.
    pub length: u32,
    /// Digits in all and after the point, for numbers (`int`/`long`: digits, scale 0).
    pub precision: u8,
    pub scale: u8,
    /// Percent of rows where it is null; 100 for a field nobody has filled in yet.
    pub null_pct: u8,
}

/// The values of an added picklist (or multi-select picklist) field.
const ADDED_PICKLIST: &[&str] = &["North", "South", "East", "West"];

impl FieldSpec {
    /// A field of `ftype` with the lengths and digits Salesforce gives that type by default,
    /// never null.
    pub fn new(name: &str, ftype: FieldType) -> Self {
        let (length, precision, scale) = default_size(ftype);
        Self {
            name: name.to_string(),
            ftype,
            length,
            precision,
            scale,
            null_pct: 0,
        }
    }

    pub fn with_length(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    pub fn with_number(mut self, precision: u8, scale: u8) -> Self {
        self.precision = precision;
        self.scale = scale;
        self
    }

    pub fn with_nulls(mut self, pct: u8) -> Self {
        self.null_pct = pct.min(100);
        self
    }

    /// The field this spec defines, visible.
    ///
    /// # Errors
    /// A name that is not an API name, a scale above the precision, or a type an admin cannot
    /// add as a plain field here (`id`, the compounds `address` and `location`).
    pub fn field(&self) -> Result<Field, String> {
        let valid = self.name.starts_with(|c: char| c.is_ascii_alphabetic())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{}` is not a field API name", self.name));
        }
        if self.scale > self.precision && self.ftype.is_numeric() {
            return Err(format!(
                "`{}`: scale {} is above precision {}",
                self.name, self.scale, self.precision
            ));
        }
        // Number draws stay well inside the precision, and inside an i64.
        let top = |digits: u8| 10i64.pow(u32::from(digits.clamp(1, 15)));
        let (generator, picklist, reference_to): (Gen, &'static [&'static str], _) =
            match self.ftype {
                FieldType::Id | FieldType::Address | FieldType::Location => {
                    return Err(format!(
                        "`{}`: a `{}` field cannot be added at run time",
                        self.name,
                        self.ftype.api_name()
                    ));
                }
                FieldType::Reference => (Gen::User(salt_of(&self.name)), &[], Some("User")),
                FieldType::Email => (Gen::Email, &[], None),
                FieldType::Phone => (Gen::Phone, &[], None),
                FieldType::Url => (Gen::Website, &[], None),
                FieldType::String | FieldType::Textarea | FieldType::EncryptedString => {
                    (Gen::Words(1, 4), &[], None)
                }
                FieldType::Picklist => (Gen::Pick, ADDED_PICKLIST, None),
                FieldType::Multipicklist => (Gen::MultiPick, ADDED_PICKLIST, None),
                FieldType::Boolean => (Gen::Flag(50), &[], None),
                FieldType::Int | FieldType::Long => {
                    (Gen::Number(0, top(self.precision.min(9))), &[], None)
                }
                FieldType::Double | FieldType::Currency | FieldType::Percent => {
                    (Gen::Number(0, top(self.precision)), &[], None)
                }
                FieldType::Date => (Gen::DateAround(365, 0), &[], None),
                FieldType::DateTime => (Gen::DateTimeBefore(30), &[], None),
                FieldType::Time => (Gen::TimeOfDay, &[], None),
                FieldType::Base64 => (Gen::BlobUrl, &[], None),
            };
        let nillable = self.ftype != FieldType::Boolean;
        Ok(Field {
            name: intern(&self.name),
            label: label_of(&self.name),
            ftype: self.ftype,
            length: self.length,
            precision: self.precision,
            scale: self.scale,
            nillable,
            custom: self.name.ends_with("__c"),
            auto_number: false,
            compound: None,
            components: Vec::new(),
            reference_to,
            relationship_name: None,
            picklist,
            null_pct: if nillable { self.null_pct } else { 0 },
            generator,
            hidden: false,
        })
    }
}

/// The length, precision and scale Salesforce gives a field of `ftype` by default.
fn default_size(ftype: FieldType) -> (u32, u8, u8) {
    match ftype {
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
    }
}

/// A salt for an added field's user references, from its name.
fn salt_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The `'static` name of an added field. Field names are `'static` (the seeded ones are
/// literals, and error messages and query plans borrow them freely); a run-time name is leaked
/// once per distinct name, which bounds the leak by the names a test or a session invents.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
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
