//! Field values: how each field's value is derived from a row's seed and version.
//!
//! Values are computed on demand from `(row.key, field, row.version)` rather than stored, so a
//! scale-100 org costs a few words per row and generation stays fast. Invariants: the same row
//! and version always give the same value; editing a row (a new version) changes its user data
//! but never its `Id`, `CreatedDate` or `CreatedById`; fields of one person, company or address
//! are drawn from a shared salt so they agree with each other.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, Duration, NaiveDate};

use super::Row;
use super::schema::{Field, FieldType};

/// A typed field value, as the executor filters, sorts and renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// `units × 10^-scale`: currency, percent and double keep their exact decimal digits.
    Dec {
        units: i64,
        scale: u8,
    },
    Date(NaiveDate),
    /// Milliseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// Milliseconds since midnight.
    Time(u32),
    Text(Cow<'static, str>),
    /// An 18-character record id (ids compare case-sensitively, unlike text).
    Id(IdValue),
}

/// A record id: the object's key prefix and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdValue {
    pub prefix: &'static str,
    pub seq: u64,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

impl IdValue {
    /// The 18-char id: prefix, a pod-like `8c`, zero padding, the base-62 sequence (so ids
    /// sort in creation order), then the case-checksum suffix Salesforce appends.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut id = [b'0'; 18];
        id[..3].copy_from_slice(self.prefix.as_bytes());
        id[3] = b'8';
        id[4] = b'c';
        let mut n = self.seq + 1;
        for slot in id[5..15].iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        for chunk in 0..3 {
            let mut bits = 0usize;
            for (bit, c) in id[chunk * 5..chunk * 5 + 5].iter().enumerate() {
                if c.is_ascii_uppercase() {
                    bits |= 1 << bit;
                }
            }
            id[15 + chunk] = CHECKSUM[bits];
        }
        out.extend_from_slice(&id);
    }

    pub fn to_string_18(&self) -> String {
        let mut v = Vec::with_capacity(18);
        self.write(&mut v);
        String::from_utf8(v).expect("ascii")
    }
}

impl Value {
    /// Orders two values of the same kind; `None` across kinds or with nulls. Text compares
    /// case-insensitively, as SOQL does.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Dec { .. }) => Value::Dec {
                units: *a,
                scale: 0,
            }
            .compare(other),
            (Value::Dec { .. }, Value::Int(b)) => self.compare(&Value::Dec {
                units: *b,
                scale: 0,
            }),
            (
                Value::Dec {
                    units: a,
                    scale: sa,
                },
                Value::Dec {
                    units: b,
                    scale: sb,
                },
            ) => {
                let s = (*sa).max(*sb);
                let a = i128::from(*a) * 10i128.pow(u32::from(s - sa));
                let b = i128::from(*b) * 10i128.pow(u32::from(s - sb));
                Some(a.cmp(&b))
            }
            (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
            (Value::DateTime(a), Value::DateTime(b)) => Some(a.cmp(b)),
            (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
            (Value::Id(a), Value::Id(b)) => Some(a.cmp(b)),
            (Value::Id(a), Value::Text(b)) => Some(a.to_string_18().as_str().cmp(b)),
            (Value::Text(a), Value::Id(b)) => Some(a.as_ref().cmp(b.to_string_18().as_str())),
            (Value::Text(a), Value::Text(b)) => Some(cmp_ignore_case(a, b)),
            _ => None,
        }
    }

    /// The total order used by ORDER BY and GROUP BY: nulls first, then by value.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            _ => self.compare(other).unwrap_or(Ordering::Equal),
        }
    }

    /// The value as text (for LIKE and text equality), `None` for non-text values.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Text(t) => Some(Cow::Borrowed(t.as_ref())),
            Value::Id(id) => Some(Cow::Owned(id.to_string_18())),
            _ => None,
        }
    }
}

fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.to_lowercase().cmp(&b.to_lowercase())
    }
}

/// How an address spells its state and country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Free text (`CA`, `USA`): a standard address in an org without state and country
    /// picklists.
    Name,
    /// ISO 3166 codes (`CA`, `US`): a custom address field, which Salesforce offers only with
    /// those picklists on, so it has `StateCode`/`CountryCode` components and no names.
    IsoCode,
}

/// How a field's value is produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gen {
    Id,
    CreatedDate,
    LastModifiedDate,
    SystemModstamp,
    /// `LoginHistory.LoginTime`: the row's only timestamp.
    LoginTime,
    IsDeleted,
    /// The user who created the row (never changes).
    CreatedBy,
    /// A user reference drawn per version (`OwnerId`, `LastModifiedById`, `UserId`).
    User(u64),
    /// A reference to a row of the object with this index in the org.
    Ref(usize),
    Company,
    FirstName,
    LastName,
    FullName,
    Email,
    Phone,
    Website,
    /// Address parts share the salt of their address.
    Street(u64),
    City(u64),
    State(u64, Region),
    PostalCode(u64),
    Country(u64, Region),
    Latitude(u64),
    Longitude(u64),
    GeoAccuracy(u64),
    Pick,
    MultiPick,
    Words(u8, u8),
    /// Multi-line text with accents, CJK and emoji.
    LongText,
    /// Two or three lines of plain text.
    Lines,
    /// Decimal units in `min..max` at the field's scale.
    Number(i64, i64),
    /// A date this many days around the row's modification date.
    DateAround(i32, i32),
    /// A date-time with milliseconds, up to this many days before the modification.
    DateTimeBefore(i32),
    /// Set only when the `Status`-like picklist at this index is a closed value.
    ClosedDate(usize),
    TimeOfDay,
    /// `true` with this percent chance.
    Flag(u8),
    /// `INV-000123`: the row's sequence number.
    AutoNumber(&'static str),
    Ip,
    Masked,
    /// Compound fields are rendered from their components.
    Compound,
    /// A `base64` field: the relative URL of the row's blob, as query results carry it.
    BlobUrl,
}

impl Gen {
    /// Whether a user could set this field (the describe's createable/updateable).
    pub fn is_user_data(&self) -> bool {
        !matches!(
            self,
            Gen::Id
                | Gen::CreatedDate
                | Gen::LastModifiedDate
                | Gen::SystemModstamp
                | Gen::LoginTime
                | Gen::IsDeleted
                | Gen::CreatedBy
                | Gen::AutoNumber(_)
                | Gen::Compound
        )
    }
}

/// The users rows are owned by; ids use the `005` prefix.
pub const USERS: &[&str] = &[
    "Ada Admin",
    "Integration User",
    "María José Núñez",
    "Kenji Watanabe",
    "Priya Raman",
    "Tom O'Brien",
    "Chloé Dubois",
    "Sam Okafor",
];

/// The `User` id of user number `n`.
pub fn user_id(n: u64) -> IdValue {
    IdValue {
        prefix: "005",
        seq: n % USERS.len() as u64,
    }
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "José", "Zoë",
    "Søren", "Yuki", "Wei", "Amara", "Olu", "Ingrid", "Rahul", "Fatima", "Liam", "Noor",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Turing",
    "Liskov",
    "Thompson",
    "Allen",
    "García",
    "O'Neil",
    "Kierkegaard",
    "Tanaka",
    "Zhang",
    "Okafor",
    "Adeyemi",
    "Berg",
    "Patel",
    "Haddad",
    "Murphy",
    "Khan",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Nakatomi",
    "Gringotts",
    "Müller",
    "Björk",
];
const COMPANY_B: &[&str] = &[
    "Corp",
    "Industries",
    "Labs",
    "Holdings",
    "GmbH",
    "& Sons",
    "Systems",
    "Logistics",
    "AG",
    "Partners",
];
const WORDS: &[&str] = &[
    "quarterly",
    "renewal",
    "shipment",
    "delayed",
    "invoice",
    "customer",
    "requested",
    "update",
    "pricing",
    "contract",
    "urgent",
    "review",
    "follow-up",
    "onboarding",
    "escalation",
    "portal",
    "login",
    "issue",
    "billing",
    "discount",
];
/// One seeded place. Standard addresses (state and country picklists off) hold `state` and
/// `country` as free text; custom address fields, which exist only with those picklists on,
/// hold the ISO 3166 codes.
struct Place {
    city: &'static str,
    /// Empty where the country has no states in the address.
    state: &'static str,
    /// The ISO 3166-2 subdivision code after the country prefix (`CA` of `US-CA`).
    state_code: &'static str,
    postal_code: &'static str,
    country: &'static str,
    /// ISO 3166-1 alpha-2.
    country_code: &'static str,
    /// Latitude and longitude × 10^6.
    latitude: i64,
    longitude: i64,
}

const fn place_at(
    city: &'static str,
    (state, state_code): (&'static str, &'static str),
    postal_code: &'static str,
    (country, country_code): (&'static str, &'static str),
    (latitude, longitude): (i64, i64),
) -> Place {
    Place {
        city,
        state,
        state_code,
        postal_code,
        country,
        country_code,
        latitude,
        longitude,
    }
}

const PLACES: &[Place] = &[
    place_at(
        "San Francisco",
        ("CA", "CA"),
        "94105",
        ("USA", "US"),
        (37_789_900, -122_396_900),
    ),
    place_at(
        "New York",
        ("NY", "NY"),
        "10001",
        ("USA", "US"),
        (40_750_700, -73_996_500),
    ),
    place_at(
        "Chicago",
        ("IL", "IL"),
        "60601",
        ("USA", "US"),
        (41_886_000, -87_618_300),
    ),
    place_at(
        "Austin",
        ("TX", "TX"),
        "78701",
        ("USA", "US"),
        (30_267_100, -97_743_100),
    ),
    place_at(
        "Seattle",
        ("WA", "WA"),
        "98101",
        ("USA", "US"),
        (47_610_100, -122_335_000),
    ),
    place_at(
        "Toronto",
        ("ON", "ON"),
        "M5V 2T6",
        ("Canada", "CA"),
        (43_642_600, -79_387_100),
    ),
    place_at(
        "London",
        ("", ""),
        "EC1A 1BB",
        ("United Kingdom", "GB"),
        (51_515_000, -97_500),
    ),
    place_at(
        "München",
        ("BY", "BY"),
        "80331",
        ("Germany", "DE"),
        (48_137_100, 11_575_400),
    ),
    place_at(
        "São Paulo",
        ("SP", "SP"),
        "01310-100",
        ("Brazil", "BR"),
        (-23_561_400, -46_655_900),
    ),
    place_at(
        "東京",
        ("Tokyo", "13"),
        "100-0005",
        ("Japan", "JP"),
        (35_681_200, 139_767_100),
    ),
];

/// The state codes [`PLACES`] use, for a custom address's `StateCode` picklist.
pub const STATE_CODES: &[&str] = &["CA", "NY", "IL", "TX", "WA", "ON", "BY", "SP", "13"];
/// The country codes [`PLACES`] use, for a custom address's `CountryCode` picklist.
pub const COUNTRY_CODES: &[&str] = &["US", "CA", "GB", "DE", "BR", "JP"];

const STREETS: &[&str] = &[
    "Mission St",
    "Market St",
    "Broadway",
    "Main St",
    "Elm Ave",
    "Rue de Rivoli",
    "Königstraße",
    "Avenida Paulista",
];
const LONG_LINES: &[&str] = &[
    "Payment terms: net 30 days.",
    "Late fees apply after 45 days — see §4.2.",
    "Café au lait délivré à Zürich; reçu signé.",
    "请在三十天内付款。",
    "東京オフィス宛てに請求書を送付してください。",
    "Thanks for your business! 🎉🚀",
    "Contact: \"Accounts\" <ap@example.com>\tref\\42",
    "Ünïcödé ñame with ß and ø.",
];

/// SplitMix64: a fast, well-mixed hash of a 64-bit state.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random draw for `(row, salt)`; user data also depends on the row's version.
fn draw(row: &Row, salt: u64) -> u64 {
    mix(row.key ^ mix(salt ^ (u64::from(row.version) << 40)))
}

fn pick<T: Copy>(list: &[T], r: u64) -> T {
    list[(r % list.len() as u64) as usize]
}

/// What the generator needs besides the row: the object's key prefix and every object's row
/// count (for references).
pub struct GenCtx<'a> {
    /// The object's API name and key prefix.
    pub object: &'a str,
    pub prefix: &'static str,
    pub counts: &'a [usize],
    pub prefixes: &'a [&'static str],
}

/// The value of `fields[index]` in `row`.
pub fn value_of(ctx: &GenCtx<'_>, fields: &[Field], index: usize, row: &Row) -> Value {
    let field = &fields[index];
    let salt = (index as u64 + 1).wrapping_mul(0x1000_0001);
    if field.nillable
        && field.null_pct > 0
        && draw(row, null_salt(field.generator, salt) ^ 0xdead) % 100 < u64::from(field.null_pct)
    {
        return Value::Null;
    }
    let r = draw(row, salt);
    let text = |s: &'static str| Value::Text(Cow::Borrowed(s));
    match field.generator {
        Gen::Id => Value::Id(IdValue {
            prefix: ctx.prefix,
            seq: row.seq,
        }),
        Gen::CreatedDate => Value::DateTime(row.created),
        Gen::LastModifiedDate | Gen::LoginTime => Value::DateTime(row.modified),
        Gen::SystemModstamp => Value::DateTime(row.modstamp),
        Gen::IsDeleted => Value::Bool(row.deleted),
        Gen::CreatedBy => Value::Id(user_id(mix(row.key ^ 0xc4ea7ed))),
        Gen::User(s) => Value::Id(user_id(draw(row, s))),
        Gen::Ref(target) => {
            let n = ctx.counts.get(target).copied().unwrap_or(0) as u64;
            if n == 0 {
                return Value::Null;
            }
            Value::Id(IdValue {
                prefix: ctx.prefixes[target],
                seq: mix(row.key ^ 0x5eed ^ target as u64) % n,
            })
        }
        Gen::Company => Value::Text(Cow::Owned(company(row))),
        Gen::FirstName => text(pick(FIRST, draw(row, 0xf1257))),
        Gen::LastName => text(pick(LAST, draw(row, 0x1a57))),
        Gen::FullName => Value::Text(Cow::Owned(format!(
            "{} {}",
            pick(FIRST, draw(row, 0xf1257)),
            pick(LAST, draw(row, 0x1a57))
        ))),
        Gen::Email => Value::Text(Cow::Owned(format!(
            "{}.{}{}@example.com",
            ascii_lower(pick(FIRST, draw(row, 0xf1257))),
            ascii_lower(pick(LAST, draw(row, 0x1a57))),
            row.seq
        ))),
        Gen::Phone => Value::Text(Cow::Owned(format!(
            "({:03}) 555-{:04}",
            200 + r % 800,
            (r >> 16) % 10_000
        ))),
        Gen::Website => Value::Text(Cow::Owned(format!(
            "https://www.{}.example.com",
            ascii_lower(pick(COMPANY_A, draw(row, 0xc0))),
        ))),
        Gen::Street(s) => Value::Text(Cow::Owned(format!(
            "{} {}",
            1 + draw(row, s ^ 1) % 999,
            pick(STREETS, draw(row, s ^ 2))
        ))),
        Gen::City(s) => text(place(row, s).city),
        Gen::State(s, region) => {
            let p = place(row, s);
            let state = match region {
                Region::Name => p.state,
                Region::IsoCode => p.state_code,
            };
            if state.is_empty() {
                Value::Null
            } else {
                text(state)
            }
        }
        Gen::PostalCode(s) => text(place(row, s).postal_code),
        Gen::Country(s, Region::Name) => text(place(row, s).country),
        Gen::Country(s, Region::IsoCode) => text(place(row, s).country_code),
        Gen::Latitude(s) => Value::Dec {
            units: place(row, s).latitude + (draw(row, s ^ 3) % 2000) as i64 - 1000,
            scale: 6,
        },
        Gen::Longitude(s) => Value::Dec {
            units: place(row, s).longitude + (draw(row, s ^ 4) % 2000) as i64 - 1000,
            scale: 6,
        },
        Gen::GeoAccuracy(s) => text(pick(
            &["Address", "Street", "Zip", "City"],
            draw(row, s ^ 5),
        )),
        Gen::Pick => text(pick(field.picklist, r)),
        Gen::MultiPick => {
            let mut chosen: Vec<&str> = field
                .picklist
                .iter()
                .enumerate()
                .filter(|(i, _)| (r >> i) & 1 == 1)
                .map(|(_, v)| *v)
                .collect();
            if chosen.is_empty() {
                chosen.push(field.picklist[0]);
            }
            Value::Text(Cow::Owned(chosen.join(";")))
        }
        Gen::Words(min, max) => Value::Text(Cow::Owned(words(r, min, max))),
        Gen::Lines => Value::Text(Cow::Owned(format!(
            "{}\n{}\r\nref #{}",
            words(r, 2, 5),
            words(r >> 7, 3, 6),
            row.seq
        ))),
        Gen::LongText => {
            let n = 2 + (r % 5) as usize;
            let lines: Vec<&str> = (0..n)
                .map(|i| pick(LONG_LINES, mix(r + i as u64)))
                .collect();
            Value::Text(Cow::Owned(lines.join("\n")))
        }
        Gen::Number(min, max) => {
            let units = min + (r % (max - min).max(1) as u64) as i64;
            if matches!(field.ftype, FieldType::Int | FieldType::Long) {
                Value::Int(units)
            } else {
                Value::Dec {
                    units,
                    scale: field.scale,
                }
            }
        }
        Gen::DateAround(before, after) => {
            let base = DateTime::from_timestamp_millis(row.modified)
                .expect("valid")
                .date_naive();
            let span = (before + after).max(1) as u64;
            Value::Date(base + Duration::days((r % span) as i64 - i64::from(before)))
        }
        Gen::DateTimeBefore(days) => {
            let back = (r % (days.max(1) as u64 * 86_400_000)) as i64;
            // Never a whole second, so clients must keep milliseconds.
            let t = row.modified - back;
            Value::DateTime(t - t.rem_euclid(1000) + 1 + (r >> 20) as i64 % 999)
        }
        Gen::ClosedDate(status) => match value_of(ctx, fields, status, row) {
            Value::Text(s) if s.starts_with("Closed") => Value::DateTime(row.modified),
            _ => Value::Null,
        },
        Gen::TimeOfDay => Value::Time(((r % 96) * 15 * 60_000) as u32),
        Gen::BlobUrl => {
            let mut id = Vec::with_capacity(18);
            IdValue {
                prefix: ctx.prefix,
                seq: row.seq,
            }
            .write(&mut id);
            Value::Text(Cow::Owned(format!(
                "/services/data/v62.0/sobjects/{}/{}/{}",
                ctx.object,
                String::from_utf8_lossy(&id),
                field.name
            )))
        }
        Gen::Flag(pct) => Value::Bool(r % 100 < u64::from(pct)),
        Gen::AutoNumber(prefix) => Value::Text(Cow::Owned(format!("{prefix}{:06}", row.seq + 1))),
        Gen::Ip => Value::Text(Cow::Owned(format!(
            "{}.{}.{}.{}",
            10 + r % 200,
            (r >> 8) % 256,
            (r >> 16) % 256,
            1 + (r >> 24) % 254
        ))),
        Gen::Masked => Value::Text(Cow::Owned(format!("****-****-****-{:04}", r % 10_000))),
        Gen::Compound => Value::Null,
    }
}

/// Parts of one address are null together.
fn null_salt(generator: Gen, salt: u64) -> u64 {
    match generator {
        Gen::Street(s)
        | Gen::City(s)
        | Gen::State(s, _)
        | Gen::PostalCode(s)
        | Gen::Country(s, _)
        | Gen::Latitude(s)
        | Gen::Longitude(s)
        | Gen::GeoAccuracy(s) => s,
        _ => salt,
    }
}

fn company(row: &Row) -> String {
    format!(
        "{} {} {}",
        pick(COMPANY_A, draw(row, 0xc0)),
        pick(COMPANY_B, draw(row, 0xc1)),
        row.seq + 1
    )
}

fn place(row: &Row, salt: u64) -> &'static Place {
    &PLACES[(draw(row, salt) % PLACES.len() as u64) as usize]
}

fn words(r: u64, min: u8, max: u8) -> String {
    let n = u64::from(min) + r % u64::from((max - min).max(1));
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(pick(WORDS, mix(r ^ i)));
    }
    out
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
