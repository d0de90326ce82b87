//! The seeded objects' field tables and yearly volumes.
//!
//! Invariants: object indices match [`OBJECTS`]; every object but `LoginHistory` has the
//! audit fields (`IsDeleted`, `CreatedDate`, `CreatedById`, `LastModifiedDate`,
//! `LastModifiedById`, `SystemModstamp`); `LoginHistory` has only `LoginTime`.

use super::schema::{Field, FieldType as T, ObjectSchema, SchemaBuilder};
use super::values::{COUNTRY_CODES, Gen, Region, STATE_CODES};

pub const ACCOUNT: usize = 0;
pub const CONTACT: usize = 1;
pub const OPPORTUNITY: usize = 2;
pub const CASE: usize = 3;
pub const LEAD: usize = 4;
pub const INVOICE: usize = 5;
pub const LOGIN_HISTORY: usize = 6;

/// Per object: rows per year at scale 1 before the June push and the heavy day.
pub const YEARLY_ROWS: [u32; 7] = [13_000, 17_000, 14_000, 14_000, 11_000, 13_000, 11_000];

/// Builds every seeded object, in index order.
pub fn all() -> Vec<ObjectSchema> {
    vec![
        account(),
        contact(),
        opportunity(),
        case(),
        lead(),
        invoice(),
        login_history(),
    ]
}

const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Banking",
    "Biotechnology",
    "Education",
    "Energy",
    "Healthcare",
    "Media",
    "Retail",
    "Technology",
    "Transportation",
];
const ACCOUNT_TYPES: &[&str] = &[
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Partner",
    "Other",
];
const RATINGS: &[&str] = &["Hot", "Warm", "Cold"];
const TIERS: &[&str] = &["Gold", "Silver", "Bronze"];
const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Trade Show",
    "Other",
];
const CASE_STATUS: &[&str] = &["New", "Working", "Escalated", "Closed", "Closed - Resolved"];
const PRIORITIES: &[&str] = &["High", "Medium", "Low"];
const ORIGINS: &[&str] = &["Phone", "Email", "Web"];
const LEAD_STATUS: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];
const INVOICE_STATUS: &[&str] = &["Draft", "Sent", "Paid", "Overdue", "Void"];
const TAGS: &[&str] = &["Urgent", "Recurring", "Discounted", "Export", "Manual"];
const LOGIN_TYPES: &[&str] = &[
    "Application",
    "Remote Access 2.0",
    "SAML Sfdc Initiated SSO",
    "Other Apex API",
];
const LOGIN_STATUS: &[&str] = &[
    "Success",
    "Success",
    "Success",
    "Invalid Password",
    "Failed: API security token required",
];
const BROWSERS: &[&str] = &["Chrome 126", "Firefox 127", "Safari 17", "Unknown"];
const PLATFORMS: &[&str] = &["Mac OSX", "Windows 10", "Linux", "iOS", "Unknown"];
const APPLICATIONS: &[&str] = &["Browser", "sfbackfill", "Salesforce for iOS", "Data Loader"];

/// `IsDeleted`, created/modified stamps and their users, `SystemModstamp`.
fn audit(b: &mut SchemaBuilder) {
    b.push("IsDeleted", T::Boolean, Gen::IsDeleted)
        .label("Deleted");
    b.push("CreatedDate", T::DateTime, Gen::CreatedDate)
        .not_null();
    b.push("CreatedById", T::Reference, Gen::CreatedBy)
        .not_null()
        .refers("User", "CreatedBy");
    b.push("LastModifiedDate", T::DateTime, Gen::LastModifiedDate)
        .not_null();
    b.push("LastModifiedById", T::Reference, Gen::User(0x001a_57b1))
        .not_null()
        .refers("User", "LastModifiedBy");
    b.push("SystemModstamp", T::DateTime, Gen::SystemModstamp)
        .not_null()
        .label("System Modstamp");
}

fn owner(b: &mut SchemaBuilder) {
    b.push("OwnerId", T::Reference, Gen::User(0x0e4e))
        .not_null()
        .refers("User", "Owner");
}

/// An address: its street, city, state, postal code, country, latitude, longitude and
/// geocode accuracy components, then the compound over them, named by `names` in that order.
///
/// `region` says how state and country are held. A standard address (`BillingStreet` …
/// `BillingAddress`) holds names in `state`/`country` text fields. A custom address
/// (`Billing_Address__Street__s` … `Billing_Address__c`) holds ISO codes in
/// `StateCode`/`CountryCode` picklists, and its compound fills `stateCode`/`countryCode`,
/// leaving `state`/`country` null.
fn address(b: &mut SchemaBuilder, names: &[&'static str; 9], salt: u64, nulls: u8, region: Region) {
    let [
        street,
        city,
        state,
        postal,
        country,
        lat,
        lon,
        accuracy,
        compound,
    ] = *names;
    b.push(street, T::Textarea, Gen::Street(salt)).nulls(nulls);
    b.push(city, T::String, Gen::City(salt))
        .len(40)
        .nulls(nulls);
    // Names are free text; codes are picklists of the codes the seeded places use.
    let (region_type, state_key, country_key) = match region {
        Region::Name => (T::String, "state", "country"),
        Region::IsoCode => (T::Picklist, "stateCode", "countryCode"),
    };
    let region_field = |f: &mut Field, codes: &'static [&'static str]| {
        match region {
            Region::Name => f.len(80),
            Region::IsoCode => f.picks(codes),
        }
        .nulls(nulls);
    };
    region_field(
        b.push(state, region_type, Gen::State(salt, region)),
        STATE_CODES,
    );
    b.push(postal, T::String, Gen::PostalCode(salt))
        .len(20)
        .nulls(nulls);
    region_field(
        b.push(country, region_type, Gen::Country(salt, region)),
        COUNTRY_CODES,
    );
    b.push(lat, T::Double, Gen::Latitude(salt))
        .num(18, 15)
        .nulls(nulls);
    b.push(lon, T::Double, Gen::Longitude(salt))
        .num(18, 15)
        .nulls(nulls);
    b.push(accuracy, T::Picklist, Gen::GeoAccuracy(salt))
        .picks(&["Address", "Street", "Zip", "City"])
        .nulls(nulls);
    b.compound(
        compound,
        T::Address,
        &[
            ("city", city),
            (country_key, country),
            ("geocodeAccuracy", accuracy),
            ("latitude", lat),
            ("longitude", lon),
            ("postalCode", postal),
            (state_key, state),
            ("street", street),
        ],
    );
}

fn account() -> ObjectSchema {
    let mut b = SchemaBuilder::new("Account", "Account", "Accounts", "001");
    audit(&mut b);
    b.push("Name", T::String, Gen::Company)
        .not_null()
        .label("Account Name");
    b.push("Type", T::Picklist, Gen::Pick)
        .picks(ACCOUNT_TYPES)
        .nulls(10)
        .label("Account Type");
    b.push("ParentId", T::Reference, Gen::Ref(ACCOUNT))
        .nulls(85)
        .refers("Account", "Parent");
    b.push("Industry", T::Picklist, Gen::Pick)
        .picks(INDUSTRIES)
        .nulls(10);
    b.push("Rating", T::Picklist, Gen::Pick)
        .picks(RATINGS)
        .nulls(30);
    b.push(
        "AnnualRevenue",
        T::Currency,
        Gen::Number(50_000, 900_000_000),
    )
    .num(18, 0)
    .nulls(15);
    b.push("NumberOfEmployees", T::Int, Gen::Number(1, 250_000))
        .num(8, 0)
        .nulls(15)
        .label("Employees");
    b.push("Phone", T::Phone, Gen::Phone)
        .nulls(5)
        .label("Account Phone");
    b.push("Fax", T::Phone, Gen::Phone)
        .nulls(70)
        .label("Account Fax");
    b.push("Website", T::Url, Gen::Website).nulls(10);
    b.push("AccountNumber", T::String, Gen::AutoNumber("ACC-"))
        .len(40)
        .nulls(20);
    b.push("Description", T::Textarea, Gen::LongText)
        .len(32000)
        .nulls(30);
    address(
        &mut b,
        &[
            "BillingStreet",
            "BillingCity",
            "BillingState",
            "BillingPostalCode",
            "BillingCountry",
            "BillingLatitude",
            "BillingLongitude",
            "BillingGeocodeAccuracy",
            "BillingAddress",
        ],
        0xb111,
        10,
        Region::Name,
    );
    address(
        &mut b,
        &[
            "ShippingStreet",
            "ShippingCity",
            "ShippingState",
            "ShippingPostalCode",
            "ShippingCountry",
            "ShippingLatitude",
            "ShippingLongitude",
            "ShippingGeocodeAccuracy",
            "ShippingAddress",
        ],
        0x5417,
        40,
        Region::Name,
    );
    owner(&mut b);
    b.push("LastActivityDate", T::Date, Gen::DateAround(60, 0))
        .nulls(40);
    b.push("Tier__c", T::Picklist, Gen::Pick)
        .picks(TIERS)
        .nulls(20);
    b.push("Customer_Since__c", T::Date, Gen::DateAround(2000, 0))
        .nulls(25);
    b.push("Health_Score__c", T::Double, Gen::Number(0, 1000))
        .num(4, 1)
        .nulls(20);
    b.build()
}

fn contact() -> ObjectSchema {
    let mut b = SchemaBuilder::new("Contact", "Contact", "Contacts", "003");
    audit(&mut b);
    b.push("AccountId", T::Reference, Gen::Ref(ACCOUNT))
        .nulls(10)
        .refers("Account", "Account");
    b.push("FirstName", T::String, Gen::FirstName)
        .len(40)
        .nulls(3);
    b.push("LastName", T::String, Gen::LastName)
        .len(80)
        .not_null();
    b.push("Name", T::String, Gen::FullName)
        .len(121)
        .not_null()
        .label("Full Name");
    b.name_parts(&["FirstName", "LastName"]);
    b.push("Email", T::Email, Gen::Email).nulls(8);
    b.push("Phone", T::Phone, Gen::Phone)
        .nulls(10)
        .label("Business Phone");
    b.push("Title", T::String, Gen::Words(1, 3))
        .len(128)
        .nulls(20);
    b.push("Birthdate", T::Date, Gen::DateAround(25_000, -6_000))
        .nulls(40);
    b.push("LeadSource", T::Picklist, Gen::Pick)
        .picks(LEAD_SOURCES)
        .nulls(25);
    b.push("HasOptedOutOfEmail", T::Boolean, Gen::Flag(12))
        .label("Email Opt Out");
    address(
        &mut b,
        &[
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
            "MailingLatitude",
            "MailingLongitude",
            "MailingGeocodeAccuracy",
            "MailingAddress",
        ],
        0x3a11,
        15,
        Region::Name,
    );
    owner(&mut b);
    b.push("Preferred_Language__c", T::Picklist, Gen::Pick)
        .picks(&["English", "Français", "Deutsch", "日本語"])
        .nulls(30);
    b.build()
}

fn opportunity() -> ObjectSchema {
    let mut b = SchemaBuilder::new("Opportunity", "Opportunity", "Opportunities", "006");
    audit(&mut b);
    b.push("AccountId", T::Reference, Gen::Ref(ACCOUNT))
        .nulls(5)
        .refers("Account", "Account");
    b.push("Name", T::String, Gen::Words(2, 5))
        .len(120)
        .not_null();
    b.push("Amount", T::Currency, Gen::Number(10_000, 2_500_000_000))
        .num(18, 2)
        .nulls(10);
    b.push("CloseDate", T::Date, Gen::DateAround(30, 120))
        .not_null();
    b.push("StageName", T::Picklist, Gen::Pick)
        .picks(STAGES)
        .not_null()
        .label("Stage");
    b.push("Probability", T::Percent, Gen::Number(0, 101))
        .num(3, 0)
        .nulls(5);
    b.push("IsWon", T::Boolean, Gen::Flag(30)).label("Won");
    b.push("IsClosed", T::Boolean, Gen::Flag(45))
        .label("Closed");
    b.push("LeadSource", T::Picklist, Gen::Pick)
        .picks(LEAD_SOURCES)
        .nulls(25);
    b.push("Description", T::Textarea, Gen::LongText)
        .len(32000)
        .nulls(40);
    b.push("NextStep", T::String, Gen::Words(2, 6)).nulls(40);
    owner(&mut b);
    b.push("Discount__c", T::Percent, Gen::Number(0, 3000))
        .num(5, 2)
        .nulls(50);
    b.build()
}

fn case() -> ObjectSchema {
    let mut b = SchemaBuilder::new("Case", "Case", "Cases", "500");
    audit(&mut b);
    b.push("CaseNumber", T::String, Gen::AutoNumber(""))
        .len(30)
        .auto_number();
    b.push("AccountId", T::Reference, Gen::Ref(ACCOUNT))
        .nulls(10)
        .refers("Account", "Account");
    b.push("ContactId", T::Reference, Gen::Ref(CONTACT))
        .nulls(20)
        .refers("Contact", "Contact");
    b.push("Subject", T::String, Gen::Words(2, 8)).nulls(3);
    let status = b.fields_len();
    b.push("Status", T::Picklist, Gen::Pick)
        .picks(CASE_STATUS)
        .nulls(0);
    b.push("Priority", T::Picklist, Gen::Pick)
        .picks(PRIORITIES)
        .nulls(5);
    b.push("Origin", T::Picklist, Gen::Pick)
        .picks(ORIGINS)
        .nulls(5)
        .label("Case Origin");
    b.push("Description", T::Textarea, Gen::LongText)
        .len(32000)
        .nulls(20);
    b.push("ClosedDate", T::DateTime, Gen::ClosedDate(status))
        .label("Closed Date");
    b.push("IsEscalated", T::Boolean, Gen::Flag(8))
        .label("Escalated");
    b.push("Comments", T::Textarea, Gen::Lines)
        .len(4000)
        .nulls(50)
        .label("Internal Comments");
    owner(&mut b);
    b.push("SLA_Hours__c", T::Double, Gen::Number(1, 200))
        .num(5, 0)
        .nulls(30);
    b.build()
}

fn lead() -> ObjectSchema {
    let mut b = SchemaBuilder::new("Lead", "Lead", "Leads", "00Q");
    audit(&mut b);
    b.push("FirstName", T::String, Gen::FirstName)
        .len(40)
        .nulls(5);
    b.push("LastName", T::String, Gen::LastName)
        .len(80)
        .not_null();
    b.push("Name", T::String, Gen::FullName)
        .len(121)
        .not_null()
        .label("Full Name");
    b.name_parts(&["FirstName", "LastName"]);
    b.push("Company", T::String, Gen::Company).not_null();
    b.push("Email", T::Email, Gen::Email).nulls(10);
    b.push("Phone", T::Phone, Gen::Phone).nulls(20);
    b.push("Status", T::Picklist, Gen::Pick)
        .picks(LEAD_STATUS)
        .not_null()
        .label("Lead Status");
    b.push("LeadSource", T::Picklist, Gen::Pick)
        .picks(LEAD_SOURCES)
        .nulls(20);
    b.push("Industry", T::Picklist, Gen::Pick)
        .picks(INDUSTRIES)
        .nulls(30);
    b.push(
        "AnnualRevenue",
        T::Currency,
        Gen::Number(10_000, 50_000_000),
    )
    .num(18, 0)
    .nulls(40);
    b.push("IsConverted", T::Boolean, Gen::Flag(20))
        .label("Converted");
    b.push("Rating", T::Picklist, Gen::Pick)
        .picks(RATINGS)
        .nulls(40);
    owner(&mut b);
    b.push("Score__c", T::Double, Gen::Number(0, 100))
        .num(3, 0)
        .nulls(20);
    b.build()
}

fn invoice() -> ObjectSchema {
    let mut b = SchemaBuilder::new("Invoice__c", "Invoice", "Invoices", "a0X");
    audit(&mut b);
    owner(&mut b);
    b.push("Name", T::String, Gen::AutoNumber("INV-"))
        .len(80)
        .auto_number()
        .label("Invoice Number");
    b.push("Account__c", T::Reference, Gen::Ref(ACCOUNT))
        .nulls(10)
        .refers("Account", "Account__r");
    b.push(
        "Amount__c",
        T::Currency,
        Gen::Number(-50_000, 4_000_000_000),
    )
    .num(16, 2)
    .nulls(10);
    b.push("Unit_Price__c", T::Currency, Gen::Number(1, 99_999_999))
        .num(14, 4)
        .nulls(10);
    b.push("Tax_Rate__c", T::Percent, Gen::Number(0, 2500))
        .num(5, 2)
        .nulls(10);
    b.push("Weight_Kg__c", T::Double, Gen::Number(1, 50_000_000))
        .num(12, 3)
        .nulls(10);
    b.push("Line_Count__c", T::Int, Gen::Number(1, 500))
        .num(9, 0)
        .nulls(10);
    b.push(
        "Sequence_Number__c",
        T::Long,
        Gen::Number(1_000_000_000_000, 9_000_000_000_000_000),
    )
    .num(18, 0)
    .nulls(10);
    b.push("Due_Date__c", T::Date, Gen::DateAround(0, 60))
        .nulls(10);
    b.push("Issued_At__c", T::DateTime, Gen::DateTimeBefore(20))
        .nulls(10);
    b.push("Delivery_Window__c", T::Time, Gen::TimeOfDay)
        .nulls(10);
    b.push("Paid__c", T::Boolean, Gen::Flag(55));
    b.push("Tags__c", T::Multipicklist, Gen::MultiPick)
        .picks(TAGS)
        .nulls(10);
    b.push("Status__c", T::Picklist, Gen::Pick)
        .picks(INVOICE_STATUS)
        .nulls(10);
    b.push("Billing_Email__c", T::Email, Gen::Email).nulls(10);
    b.push("Billing_Phone__c", T::Phone, Gen::Phone).nulls(10);
    b.push("Portal_Url__c", T::Url, Gen::Website).nulls(10);
    b.push("Notes__c", T::Textarea, Gen::Lines)
        .len(255)
        .nulls(10);
    b.push("Terms__c", T::Textarea, Gen::LongText)
        .len(32768)
        .nulls(10);
    b.push("Summary__c", T::Textarea, Gen::LongText)
        .len(32768)
        .nulls(10);
    b.push("Card_Number__c", T::EncryptedString, Gen::Masked)
        .len(19)
        .nulls(10);
    b.push("Location__Latitude__s", T::Double, Gen::Latitude(0x10c))
        .num(9, 6)
        .nulls(10);
    b.push("Location__Longitude__s", T::Double, Gen::Longitude(0x10c))
        .num(9, 6)
        .nulls(10);
    b.compound(
        "Location__c",
        T::Location,
        &[
            ("latitude", "Location__Latitude__s"),
            ("longitude", "Location__Longitude__s"),
        ],
    );
    address(
        &mut b,
        &[
            "Billing_Address__Street__s",
            "Billing_Address__City__s",
            "Billing_Address__StateCode__s",
            "Billing_Address__PostalCode__s",
            "Billing_Address__CountryCode__s",
            "Billing_Address__Latitude__s",
            "Billing_Address__Longitude__s",
            "Billing_Address__GeocodeAccuracy__s",
            "Billing_Address__c",
        ],
        0xb1a7,
        10,
        Region::IsoCode,
    );
    b.build()
}

fn login_history() -> ObjectSchema {
    let mut b = SchemaBuilder::new("LoginHistory", "Login History", "Login History", "0Ya");
    b.push("UserId", T::Reference, Gen::User(0x05e4))
        .refers("User", "User");
    b.push("LoginTime", T::DateTime, Gen::LoginTime).not_null();
    b.push("LoginType", T::Picklist, Gen::Pick)
        .picks(LOGIN_TYPES)
        .not_null();
    b.push("SourceIp", T::String, Gen::Ip)
        .len(39)
        .nulls(2)
        .label("Source IP");
    b.push("Status", T::String, Gen::Pick)
        .picks(LOGIN_STATUS)
        .len(128);
    b.push("Browser", T::String, Gen::Pick)
        .picks(BROWSERS)
        .len(64);
    b.push("Platform", T::String, Gen::Pick)
        .picks(PLATFORMS)
        .len(64);
    b.push("Application", T::String, Gen::Pick)
        .picks(APPLICATIONS)
        .len(64);
    b.build()
}
