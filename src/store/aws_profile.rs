//! S3 settings from the AWS shared config and credentials files, read in the AWS SDKs'
//! shared-config format, for what `object_store`'s environment builder does not read.
//!
//! Owns which profile applies (`AWS_PROFILE`, or the older `AWS_DEFAULT_PROFILE`, else
//! `default`), where its files are (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`,
//! sections `[name]`; `AWS_CONFIG_FILE`, else `~/.aws/config`, sections `[profile name]` and
//! `[default]`), and which of its keys apply: `aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token` (the three from one file), `region`, `endpoint_url`.
//!
//! Invariants:
//! * The environment comes first, as in the AWS SDKs: a profile's keys apply only when the
//!   environment gives neither key nor a web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`), its
//!   region only when `AWS_REGION` and `AWS_DEFAULT_REGION` are unset, its endpoint only when
//!   `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) is. Without keys from either,
//!   `object_store`'s role chain (web identity, container, instance) applies.
//! * A profile is refused before any request when `AWS_PROFILE` names one neither file holds,
//!   or when its credentials would come from something not done here (a process, SSO, an
//!   assumed role, a web identity token file): never quietly replaced by another identity.
//! * No value of a file appears in an error or in `Debug` output: errors name the file, the
//!   profile and the key, never a value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{ExitKind, UserFacing};

/// The keys of a profile that get credentials in ways sfbackfill does not.
const UNSUPPORTED: [&str; 6] = [
    "credential_process",
    "role_arn",
    "source_profile",
    "credential_source",
    "web_identity_token_file",
    "sso_session",
];

/// An access key id, its secret key and a session token.
pub(crate) type Keys = (String, String, Option<String>);

/// What the environment's chosen profile adds to the environment's own S3 settings.
#[derive(Default, PartialEq, Eq)]
pub(crate) struct ProfileSettings {
    /// Access key id, secret key and session token, when the profile supplies the keys.
    pub keys: Option<Keys>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl std::fmt::Debug for ProfileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSettings")
            .field("keys", &self.keys.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// Reads the profile the environment `env` chooses and returns what it adds.
///
/// # Errors
/// [`ProfileError`] for a named profile neither file holds, one whose credentials come from
/// something not done here, one with half a key pair, or a file that cannot be read or parsed.
pub(crate) fn settings(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProfileSettings, ProfileError> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    // `AWS_DEFAULT_PROFILE` is the AWS CLI's older name for the same choice.
    let named = ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"]
        .into_iter()
        .find_map(|v| env(v).filter(|p| !p.is_empty()));
    let profile = named.clone().unwrap_or_else(|| "default".into());
    let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let file = |variable: &str, default: &str| {
        env(variable)
            .filter(|v| !v.is_empty())
            .map(|v| expand_home(&v, home.as_deref()))
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config = file("AWS_CONFIG_FILE", "config");
    let section = |path: &Option<PathBuf>, kind| -> Result<_, ProfileError> {
        let Some(path) = path else { return Ok(None) };
        Ok(read(path, kind)?
            .remove(&profile)
            .map(|keys| (path.clone(), keys)))
    };
    let found = Found {
        credentials: section(&credentials, Kind::Credentials)?,
        config: section(&config, Kind::Config)?,
    };
    if named.is_some() && found.credentials.is_none() && found.config.is_none() {
        return Err(ProfileError::Missing {
            profile,
            files: missing_in(&[&credentials, &config]),
        });
    }
    let mut settings = ProfileSettings::default();
    // Keys in the environment win; so does a web identity (an EKS service account's role),
    // which the AWS CLI takes before the shared credentials file.
    let env_keys = set("AWS_ACCESS_KEY_ID") || set("AWS_SECRET_ACCESS_KEY");
    if !env_keys && !set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        settings.keys = found.credentials(&profile)?;
    }
    if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
        settings.region = found.value("region");
    }
    if !set("AWS_ENDPOINT_URL") && !set("AWS_ENDPOINT_URL_S3") && !set("AWS_ENDPOINT") {
        settings.endpoint_url = found.value("endpoint_url");
    }
    Ok(settings)
}

/// Where a profile was looked for, in words for [`ProfileError::Missing`].
fn missing_in(files: &[&Option<PathBuf>]) -> String {
    let named: Vec<String> = files
        .iter()
        .filter_map(|f| f.as_ref())
        .map(|p| format!("`{}`", p.display()))
        .collect();
    match named.as_slice() {
        [] => "no AWS config file (HOME is not set and neither AWS_SHARED_CREDENTIALS_FILE nor AWS_CONFIG_FILE is)".into(),
        [one] => format!("{one} does not hold it"),
        _ => format!("neither {} holds it", named.join(" nor ")),
    }
}

/// `~/…` as the AWS CLI expands it.
fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// The chosen profile's section in each file, with the file it is in.
struct Found {
    credentials: Option<(PathBuf, HashMap<String, String>)>,
    config: Option<(PathBuf, HashMap<String, String>)>,
}

impl Found {
    /// Both sections, the credentials file's first: its values win, as in the AWS CLI.
    fn sections(&self) -> impl Iterator<Item = &(PathBuf, HashMap<String, String>)> {
        self.credentials.iter().chain(&self.config)
    }

    fn value(&self, key: &str) -> Option<String> {
        self.sections()
            .find_map(|(_, keys)| keys.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// The static keys of the profile; `None` when it has none (the role chain applies).
    /// The id, secret and token come from one file, the credentials file when it has a key,
    /// so a file's keys are never paired with the other's token.
    fn credentials(&self, profile: &str) -> Result<Option<Keys>, ProfileError> {
        let unsupported = self
            .sections()
            .flat_map(|(path, keys)| keys.keys().map(move |k| (k, path)))
            .filter(|(k, _)| UNSUPPORTED.contains(&k.as_str()) || k.starts_with("sso_"))
            .min_by_key(|(k, _)| k.as_str());
        if let Some((key, path)) = unsupported {
            return Err(ProfileError::Unsupported {
                profile: profile.into(),
                file: path.clone(),
                key: key.clone(),
            });
        }
        let key_names = ["aws_access_key_id", "aws_secret_access_key"];
        let Some((file, keys)) = self
            .sections()
            .find(|(_, keys)| key_names.iter().any(|k| keys.contains_key(*k)))
        else {
            return Ok(None);
        };
        let value = |key: &str| keys.get(key).filter(|v| !v.is_empty()).cloned();
        match (value(key_names[0]), value(key_names[1])) {
            (Some(id), Some(secret)) => Ok(Some((id, secret, value("aws_session_token")))),
            (id, _) => {
                let (has, lacks) = match id {
                    Some(_) => (key_names[0], key_names[1]),
                    None => (key_names[1], key_names[0]),
                };
                Err(ProfileError::HalfKey {
                    profile: profile.into(),
                    file: file.clone(),
                    has,
                    lacks,
                })
            }
        }
    }
}

/// Which of the two files: they name their sections differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `[name]`.
    Credentials,
    /// `[profile name]`, and `[default]` (`[profile default]` wins over it).
    Config,
}

/// The profiles of the file at `path` by name; none for a missing file.
fn read(path: &Path, kind: Kind) -> Result<HashMap<String, HashMap<String, String>>, ProfileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, kind).map_err(|line| ProfileError::Malformed {
            file: path.to_path_buf(),
            line,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(ProfileError::Unreadable {
            file: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Parses a shared config or credentials file as the AWS CLI (Python's `configparser`) does:
/// `#` and `;` start a comment line, and a comment within a value when whitespace precedes
/// them; `key = value` (or `key: value`), keys case-insensitive, profile names not; a line
/// indented deeper than the key before it continues that key's value (the nested settings
/// of `s3 =`), and is not a key of the profile. Returns the first bad line's number.
fn parse(text: &str, kind: Kind) -> Result<HashMap<String, HashMap<String, String>>, usize> {
    let mut profiles: HashMap<String, HashMap<String, String>> = HashMap::new();
    // The section being read (`None` outside a profile) and the indent of its last key.
    let mut current: Option<String> = None;
    let mut key_indent: Option<usize> = None;
    let mut profile_default = false;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if key_indent.is_some_and(|k| indent > k) {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let name = header.split_once(']').ok_or(number + 1)?.0.trim();
            current = section_name(name, kind);
            // `[profile default]` wins over `[default]`, whichever comes first.
            if kind == Kind::Config && current.as_deref() == Some("default") {
                let explicit = name != "default";
                if explicit && !profile_default {
                    profiles.remove("default");
                    profile_default = true;
                } else if !explicit && profile_default {
                    current = None;
                }
            }
            if let Some(name) = &current {
                profiles.entry(name.clone()).or_default();
            }
            key_indent = None;
            continue;
        }
        let split = trimmed.find(['=', ':']).ok_or(number + 1)?;
        let key = trimmed[..split].trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(number + 1);
        }
        key_indent = Some(indent);
        let value = without_comment(trimmed[split + 1..].trim());
        if let Some(name) = &current {
            profiles
                .entry(name.clone())
                .or_default()
                .insert(key, value.to_string());
        }
    }
    Ok(profiles)
}

/// The profile a section header names; `None` for a section that is not a profile of this
/// kind of file (`[sso-session x]`, `[services x]`, a bare `[name]` in the config file).
fn section_name(header: &str, kind: Kind) -> Option<String> {
    match kind {
        Kind::Credentials => Some(header.to_string()),
        Kind::Config if header == "default" => Some(header.to_string()),
        Kind::Config => {
            let rest = header.strip_prefix("profile")?;
            let name = rest.trim();
            (rest.starts_with([' ', '\t']) && !name.is_empty()).then(|| name.to_string())
        }
    }
}

/// `value` without a trailing comment: `#` or `;` after whitespace.
fn without_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    let start = (1..bytes.len())
        .find(|&i| matches!(bytes[i], b'#' | b';') && bytes[i - 1].is_ascii_whitespace());
    match start {
        Some(i) => value[..i].trim_end(),
        None => value,
    }
}

/// Why the chosen AWS profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// `AWS_PROFILE` names a profile neither file holds.
    #[error("AWS_PROFILE names the profile `{profile}`, but {files}")]
    Missing { profile: String, files: String },
    /// The profile's credentials come from something sfbackfill does not do.
    #[error(
        "the AWS profile `{profile}` (in `{}`) gets its credentials through `{key}`, which sfbackfill does not support",
        file.display()
    )]
    Unsupported {
        profile: String,
        file: PathBuf,
        key: String,
    },
    /// The profile has one key of the pair without the other.
    #[error("the AWS profile `{profile}` (in `{}`) has `{has}` but no `{lacks}`", file.display())]
    HalfKey {
        profile: String,
        file: PathBuf,
        has: &'static str,
        lacks: &'static str,
    },
    /// A line of a file is neither a section, a key nor a comment.
    #[error("line {line} of `{}` is neither `[section]` nor `key = value`", file.display())]
    Malformed { file: PathBuf, line: usize },
    /// A file exists but cannot be read.
    #[error("cannot read `{}`: {reason}", file.display())]
    Unreadable { file: PathBuf, reason: String },
}

impl UserFacing for ProfileError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ProfileError::Missing { .. } => "set AWS_PROFILE to a profile of those files, or \
                unset it and give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or run where an \
                instance or container role applies)"
                .into(),
            ProfileError::Unsupported { profile, .. } => format!(
                "export the profile's credentials into the environment \
                 (`eval \"$(aws configure export-credentials --profile {profile} --format env)\"`), \
                 put static keys in a profile, or run where an instance or container role applies"
            ),
            ProfileError::HalfKey { .. } => {
                "give the profile both keys, or the environment AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .into()
            }
            ProfileError::Malformed { .. } | ProfileError::Unreadable { .. } => {
                "fix the file (see `aws configure`), or point AWS_CONFIG_FILE or \
                 AWS_SHARED_CREDENTIALS_FILE elsewhere"
                    .into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(text: &str, kind: Kind) -> HashMap<String, HashMap<String, String>> {
        parse(text, kind).unwrap()
    }

    fn get<'a>(
        p: &'a HashMap<String, HashMap<String, String>>,
        profile: &str,
        key: &str,
    ) -> Option<&'a str> {
        p.get(profile)?.get(key).map(String::as_str)
    }

    #[test]
    fn comments_whitespace_and_key_case_are_read_as_the_aws_cli_reads_them() {
        let text = "# a comment\n; another\n[default]\n  AWS_Access_Key_ID =  AKIA1  \n\
            aws_secret_access_key=abc/def+ghi\n\n[work] ; the team's\nregion = eu-west-1 # Ireland\n\
            endpoint_url = http://127.0.0.1:9000\nmark = a#b\n";
        let p = profiles(text, Kind::Credentials);
        assert_eq!(get(&p, "default", "aws_access_key_id"), Some("AKIA1"));
        assert_eq!(
            get(&p, "default", "aws_secret_access_key"),
            Some("abc/def+ghi")
        );
        assert_eq!(get(&p, "work", "region"), Some("eu-west-1"));
        assert_eq!(
            get(&p, "work", "endpoint_url"),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(get(&p, "work", "mark"), Some("a#b"));
        assert!(!p.contains_key("Work"), "profile names keep their case");
    }

    #[test]
    fn nested_settings_are_not_keys_of_the_profile() {
        let text = "[default]\nregion = us-east-1\ns3 =\n  endpoint_url = http://nested\n  \
            addressing_style = path\noutput = json\n";
        let p = profiles(text, Kind::Config);
        assert_eq!(get(&p, "default", "endpoint_url"), None);
        assert_eq!(get(&p, "default", "output"), Some("json"));
        assert_eq!(get(&p, "default", "s3"), Some(""));
    }

    #[test]
    fn the_config_file_names_profiles_with_a_prefix_and_default_without() {
        let text = "[default]\nregion = a\n[profile other]\nregion = b\n[bare]\nregion = c\n\
            [sso-session s]\nregion = d\n[services local]\nregion = e\n";
        let p = profiles(text, Kind::Config);
        assert_eq!(get(&p, "default", "region"), Some("a"));
        assert_eq!(get(&p, "other", "region"), Some("b"));
        assert_eq!(p.len(), 2, "{:?}", p.keys().collect::<Vec<_>>());
        let p = profiles(
            "[profile default]\nregion = x\n[default]\nregion = y\n",
            Kind::Config,
        );
        assert_eq!(get(&p, "default", "region"), Some("x"));
        let p = profiles(
            "[default]\nregion = y\nout = 1\n[profile default]\nregion = x\n",
            Kind::Config,
        );
        assert_eq!(get(&p, "default", "region"), Some("x"));
        assert_eq!(get(&p, "default", "out"), None);
        let p = profiles("[profile other]\nregion = b\n", Kind::Credentials);
        assert!(p.contains_key("profile other"));
    }

    #[test]
    fn a_line_that_is_neither_a_section_nor_a_key_is_refused_by_number() {
        assert_eq!(
            parse("[default]\nregion = a\njust words\n", Kind::Config),
            Err(3)
        );
        assert_eq!(parse("[default\n", Kind::Config), Err(1));
        assert_eq!(parse("= value\n", Kind::Config), Err(1));
    }

    /// Writes the two files into a new folder; `vars` is the environment besides them.
    fn resolve(
        credentials: &str,
        config: &str,
        vars: &[(&str, &str)],
    ) -> Result<ProfileSettings, ProfileError> {
        let dir = tempfile::tempdir().unwrap();
        let (c, f) = (dir.path().join("credentials"), dir.path().join("config"));
        std::fs::write(&c, credentials).unwrap();
        std::fs::write(&f, config).unwrap();
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert(
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            c.display().to_string(),
        );
        env.insert("AWS_CONFIG_FILE".into(), f.display().to_string());
        env.insert("HOME".into(), "/nonexistent".into());
        settings(&|k| env.get(k).cloned())
    }

    const KEYS: &str = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\
        [other]\naws_access_key_id = A2\naws_secret_access_key = S2\naws_session_token = T2\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\nendpoint_url = http://e\n\
        [profile other]\nregion = us-west-2\n[profile proc]\ncredential_process = /bin/creds\n";

    #[test]
    fn the_environment_comes_first_then_the_profile() {
        let s = resolve(KEYS, CONFIG, &[]).unwrap();
        assert_eq!(s.keys, Some(("A".into(), "S".into(), None)));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.endpoint_url.as_deref(), Some("http://e"));
        let s = resolve(KEYS, CONFIG, &[("AWS_PROFILE", "other")]).unwrap();
        assert_eq!(s.keys, Some(("A2".into(), "S2".into(), Some("T2".into()))));
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert_eq!(s.endpoint_url, None);
        let env = [
            ("AWS_ACCESS_KEY_ID", "E"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "http://env"),
        ];
        assert_eq!(
            resolve(KEYS, CONFIG, &env).unwrap(),
            ProfileSettings::default()
        );
        assert_eq!(resolve("", "", &[]).unwrap(), ProfileSettings::default());
    }

    #[test]
    fn a_web_identity_wins_over_profile_keys_and_the_older_profile_variable_is_read() {
        let web = [("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token")];
        let s = resolve(KEYS, CONFIG, &web).unwrap();
        assert_eq!(s.keys, None, "the role chain's web identity applies");
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        let s = resolve(KEYS, CONFIG, &[("AWS_DEFAULT_PROFILE", "other")]).unwrap();
        assert_eq!(s.keys, Some(("A2".into(), "S2".into(), Some("T2".into()))));
        let both = [("AWS_PROFILE", "default"), ("AWS_DEFAULT_PROFILE", "other")];
        let s = resolve(KEYS, CONFIG, &both).unwrap();
        assert_eq!(
            s.keys,
            Some(("A".into(), "S".into(), None)),
            "AWS_PROFILE first"
        );
    }

    #[test]
    fn a_profiles_keys_and_token_come_from_one_file() {
        let config = "[default]\naws_session_token = STALE\naws_access_key_id = C\n";
        let s = resolve(KEYS, config, &[]).unwrap();
        assert_eq!(s.keys, Some(("A".into(), "S".into(), None)));
        let keys = "[default]\naws_access_key_id = A\n";
        let config = "[default]\naws_secret_access_key = S\n";
        let e = resolve(keys, config, &[]).unwrap_err();
        assert!(matches!(e, ProfileError::HalfKey { .. }), "{e}");
    }

    #[test]
    fn a_missing_profile_says_where_it_was_looked_for() {
        let e = resolve(KEYS, CONFIG, &[("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(e.to_string().contains("but neither `"), "{e}");
        let env = HashMap::from([("AWS_PROFILE", "nope")]);
        let e = settings(&|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(e.to_string().contains("but no AWS config file"), "{e}");
    }

    #[test]
    fn a_missing_or_unsupported_profile_is_refused_without_its_values() {
        let e = resolve(KEYS, CONFIG, &[("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(matches!(e, ProfileError::Missing { .. }), "{e}");
        let e = resolve(KEYS, CONFIG, &[("AWS_PROFILE", "proc")]).unwrap_err();
        assert!(e.to_string().contains("`credential_process`"), "{e}");
        assert!(!e.to_string().contains("/bin/creds"), "{e}");
        // Keys in the environment: the profile gives no credentials, so its source is moot.
        let env = [
            ("AWS_PROFILE", "proc"),
            ("AWS_ACCESS_KEY_ID", "E"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
        ];
        assert!(resolve(KEYS, CONFIG, &env).is_ok());
        for extra in [
            "sso_start_url = u",
            "role_arn = r\nsource_profile = default",
        ] {
            let config = format!("[profile x]\n{extra}\n");
            let e = resolve("", &config, &[("AWS_PROFILE", "x")]).unwrap_err();
            assert!(matches!(e, ProfileError::Unsupported { .. }), "{e}");
        }
        let e = resolve("[default]\naws_access_key_id = A\n", "", &[]).unwrap_err();
        assert!(matches!(e, ProfileError::HalfKey { .. }), "{e}");
        assert!(!format!("{:?}", resolve(KEYS, "", &[]).unwrap()).contains("\"S\""));
    }
}
