//! What a sync of an object reads and writes with, when the command line leaves it open: the
//! field list, cursor and zone the folder already holds the object with, and which objects
//! cannot start without `--start`.
//!
//! Owns these choices only (pure, no I/O); the `sync` command reads the journals and the
//! describe, and checks the result against the recorded settings.
//!
//! Invariants: what the user gave always wins; else what this folder's syncs recorded, then its
//! backfill's, so a sync continues the files already written with the same columns, cursor
//! and day boundaries.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checkpoint::cursors::{ObjectCursor, SyncState};
use crate::checkpoint::{ManifestState, ObjectConfig};
use crate::error::{ExitKind, UserFacing, quoted};
use crate::plan;
use crate::salesforce::describe::ObjectDescribe;
use crate::salesforce::select;
use crate::salesforce::soql::Identifier;

/// The cursors a sync prefers, in order (salesforce-api.md §3.4): `SystemModstamp` moves on
/// every change, system ones included; `LastModifiedDate` only on user and API edits.
const SYNC_CURSORS: &[&str] = &["SystemModstamp", "LastModifiedDate"];

/// A sync that cannot start as asked; both are found before any row is read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// An object with no stored cursor and no `--start`: nothing says where to begin.
    #[error("`{object}` has no sync cursor in `{}` yet: its first sync needs --start", out.display())]
    Unseeded { object: String, out: PathBuf },
    /// No `--cursor-field`, and the object has neither preferred cursor.
    #[error("`{object}` has neither SystemModstamp nor LastModifiedDate to follow its changes")]
    NoCursor {
        object: String,
        /// The object's date-time fields, the likeliest first.
        candidates: Vec<String>,
    },
}

impl UserFacing for SettingsError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SettingsError::Unseeded { .. } => {
                "a backfill seeds the history: backfill up to a day, \
                then sync with --start that day's end (e.g. --start 2026-01-01); later syncs \
                continue from the stored cursor"
                    .into()
            }
            SettingsError::NoCursor { candidates, .. } if candidates.is_empty() => {
                "it has no date-time field, so it cannot be synced incrementally: back it up \
                 with `backfill --repull` instead"
                    .into()
            }
            SettingsError::NoCursor { candidates, .. } => format!(
                "pass --cursor-field with one of its date-time fields: {}",
                quoted(candidates)
            ),
        })
    }
}

impl SettingsError {
    pub fn unseeded(object: &str, out: &Path) -> Self {
        SettingsError::Unseeded {
            object: object.to_string(),
            out: crate::store::shown(out).into(),
        }
    }
}

/// Refuses a sync without `start` when one of `objects` has never been synced here.
///
/// # Errors
/// [`SettingsError::Unseeded`] naming the first such object.
pub fn refuse_unseeded(
    objects: &[Identifier],
    start: Option<DateTime<Utc>>,
    cursors: &SyncState,
    out: &Path,
) -> Result<(), SettingsError> {
    if start.is_some() {
        return Ok(());
    }
    let known = |o: &Identifier| {
        cursors.objects.iter().any(|(name, c)| {
            name.eq_ignore_ascii_case(o.as_str()) && (c.cursor.is_some() || c.full_pass.is_some())
        })
    };
    match objects.iter().find(|o| !known(o)) {
        Some(object) => Err(SettingsError::unseeded(object.as_str(), out)),
        None => Ok(()),
    }
}

/// `requested` (`--fields`) as given; for the other objects the list this folder already holds
/// the object with (its syncs', then its backfill's). With `all_fields`, only `requested`.
pub fn fields(
    requested: &BTreeMap<String, Vec<Identifier>>,
    all_fields: bool,
    objects: &[Identifier],
    cursors: &SyncState,
    backfilled: &ManifestState,
) -> BTreeMap<String, Vec<Identifier>> {
    let mut fields = requested.clone();
    if all_fields {
        return fields;
    }
    for object in objects {
        let name = object.to_string();
        if fields.keys().any(|o| o.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let recorded = cursors
            .objects
            .get(&name)
            .and_then(|c| c.config.as_ref().map(|c| c.written.fields.clone()))
            .or_else(|| backfilled.objects.get(&name).map(|o| o.fields.clone()));
        if let Some(list) = recorded {
            let ids = list
                .iter()
                .filter_map(|f| Identifier::parse(f).ok())
                .collect();
            fields.insert(name, ids);
        }
    }
    fields
}

/// Per object, the columns this folder holds it with, for [`crate::read::drift`]: its syncs'
/// latest config, else its backfill's.
pub fn recorded_columns(
    cursors: &SyncState,
    backfilled: &ManifestState,
) -> BTreeMap<String, ObjectConfig> {
    let mut recorded = backfilled.objects.clone();
    for (object, c) in &cursors.objects {
        if let Some(config) = &c.config {
            recorded.insert(object.clone(), config.written.clone());
        }
    }
    recorded
}

/// `requested` (`--cursor-field`), else the cursor the object was synced with, else
/// `SystemModstamp`, else `LastModifiedDate`, whichever the object has as a date-time.
///
/// # Errors
/// [`SettingsError::NoCursor`] naming the object's date-time fields.
pub fn cursor(
    requested: Option<&Identifier>,
    cursors: &SyncState,
    describe: &ObjectDescribe,
) -> Result<Identifier, SettingsError> {
    if let Some(field) = requested {
        return Ok(field.clone());
    }
    let recorded = cursors
        .objects
        .get(&describe.name)
        .and_then(|c| c.config.as_ref())
        .map(|c| c.written.cursor_field.as_str());
    let found = recorded
        .into_iter()
        .chain(SYNC_CURSORS.iter().copied())
        .find(|name| describe.field(name).is_some_and(|f| f.is_datetime()));
    match found {
        Some(name) => Ok(Identifier::parse(name).expect("describe names are identifiers")),
        None => Err(SettingsError::NoCursor {
            object: describe.name.clone(),
            candidates: select::cursor_candidates(describe),
        }),
    }
}

/// `requested` (`--chunk-timezone`), else the zone the object was synced or backfilled with,
/// else UTC.
pub fn zone(
    requested: Option<Tz>,
    known: Option<&ObjectCursor>,
    backfilled: Option<&ObjectConfig>,
) -> Tz {
    let recorded = known
        .and_then(|k| k.config.as_ref().map(|c| c.written.chunk_timezone.clone()))
        .or_else(|| backfilled.map(|b| b.chunk_timezone.clone()));
    requested
        .or_else(|| recorded.and_then(|z| plan::parse_zone(&z).ok()))
        .unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::cursors::{Position, SyncConfig};
    use chrono::TimeZone;

    fn ids(names: &[&str]) -> Vec<Identifier> {
        names
            .iter()
            .map(|n| Identifier::parse(n).unwrap())
            .collect()
    }

    fn written(fields: &[&str], cursor: &str, zone: &str) -> ObjectConfig {
        ObjectConfig {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            cursor_field: cursor.into(),
            chunk_timezone: zone.into(),
            include_deleted: false,
            ..ObjectConfig::default()
        }
    }

    fn synced(config: ObjectConfig) -> ObjectCursor {
        ObjectCursor {
            config: Some(SyncConfig {
                written: config,
                origin: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            }),
            cursor: Some(Position::before(
                Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap(),
            )),
            ..ObjectCursor::default()
        }
    }

    fn describe(name: &str, datetimes: &[&str]) -> ObjectDescribe {
        let mut fields = vec![serde_json::json!({"name": "Id", "type": "id"})];
        fields.extend(
            datetimes
                .iter()
                .map(|f| serde_json::json!({"name": f, "type": "datetime"})),
        );
        serde_json::from_value(serde_json::json!({"name": name, "fields": fields})).unwrap()
    }

    #[test]
    fn only_objects_without_a_stored_position_need_start() {
        let mut cursors = SyncState::default();
        let config = written(&["Id"], "SystemModstamp", "UTC");
        cursors.objects.insert("Account".into(), synced(config));
        let out = Path::new("/tmp/sf");
        assert_eq!(
            refuse_unseeded(&ids(&["account"]), None, &cursors, out),
            Ok(())
        );
        let refused = refuse_unseeded(&ids(&["Account", "Lead"]), None, &cursors, out);
        assert_eq!(refused, Err(SettingsError::unseeded("Lead", out)));
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            refuse_unseeded(&ids(&["Lead"]), Some(start), &cursors, out),
            Ok(())
        );
    }

    #[test]
    fn fields_continue_the_syncs_list_then_the_backfills() {
        let mut cursors = SyncState::default();
        let synced_list = written(&["Id", "SystemModstamp", "Name"], "SystemModstamp", "UTC");
        cursors
            .objects
            .insert("Account".into(), synced(synced_list));
        let mut backfilled = ManifestState::default();
        let backfilled_list = written(
            &["Id", "LastModifiedDate", "Phone"],
            "LastModifiedDate",
            "UTC",
        );
        backfilled
            .objects
            .insert("Account".into(), backfilled_list.clone());
        backfilled.objects.insert("Contact".into(), backfilled_list);
        let mut requested = BTreeMap::new();
        requested.insert("Lead".to_string(), ids(&["Id", "Email"]));

        let objects = ids(&["Account", "Contact", "Lead", "Case"]);
        let chosen = fields(&requested, false, &objects, &cursors, &backfilled);
        let names = |o: &str| chosen[o].iter().map(|f| f.to_string()).collect::<Vec<_>>();
        assert_eq!(names("Account"), ["Id", "SystemModstamp", "Name"]);
        assert_eq!(names("Contact"), ["Id", "LastModifiedDate", "Phone"]);
        assert_eq!(names("Lead"), ["Id", "Email"]);
        assert!(
            !chosen.contains_key("Case"),
            "nothing recorded: the default selection"
        );

        let all = fields(&requested, true, &objects, &cursors, &backfilled);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["Lead"]);
    }

    #[test]
    fn the_cursor_is_the_recorded_one_else_the_first_preferred_the_object_has() {
        let empty = SyncState::default();
        let both = describe("Account", &["LastModifiedDate", "SystemModstamp"]);
        assert_eq!(
            cursor(None, &empty, &both).unwrap().as_str(),
            "SystemModstamp"
        );
        let no_modstamp = describe("Thing__c", &["LastModifiedDate"]);
        assert_eq!(
            cursor(None, &empty, &no_modstamp).unwrap().as_str(),
            "LastModifiedDate"
        );

        let mut cursors = SyncState::default();
        let config = written(&["Id"], "LastModifiedDate", "UTC");
        cursors.objects.insert("Account".into(), synced(config));
        assert_eq!(
            cursor(None, &cursors, &both).unwrap().as_str(),
            "LastModifiedDate"
        );

        let asked = Identifier::parse("CreatedDate").unwrap();
        assert_eq!(cursor(Some(&asked), &cursors, &both).unwrap(), asked);
    }

    #[test]
    fn an_object_without_a_preferred_cursor_is_refused_naming_its_datetimes() {
        let login = describe("LoginHistory", &["LoginTime"]);
        let refused = cursor(None, &SyncState::default(), &login).unwrap_err();
        assert_eq!(refused.exit_kind(), ExitKind::Usage);
        assert_eq!(
            refused.hint().unwrap(),
            "pass --cursor-field with one of its date-time fields: `LoginTime`"
        );
        let none = describe("Thing__c", &[]);
        let refused = cursor(None, &SyncState::default(), &none).unwrap_err();
        assert!(refused.hint().unwrap().contains("backfill --repull"));
    }

    #[test]
    fn the_zone_is_the_requested_then_the_synced_then_the_backfilled_then_utc() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let tokyo = written(&["Id"], "SystemModstamp", "Asia/Tokyo");
        let york = written(&["Id"], "SystemModstamp", "America/New_York");
        let known = synced(tokyo);
        assert_eq!(zone(Some(paris), Some(&known), Some(&york)), paris);
        assert_eq!(zone(None, Some(&known), Some(&york)).name(), "Asia/Tokyo");
        assert_eq!(zone(None, None, Some(&york)).name(), "America/New_York");
        assert_eq!(zone(None, None, None), Tz::UTC);
    }
}
