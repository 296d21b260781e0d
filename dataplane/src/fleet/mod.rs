//! Fleet configuration from etcd (`transitd run --config-etcd ENDPOINT --prefix /transitd/`):
//! the configuration file's sections stored as keys of an etcd v3 prefix, watched, and
//! assembled into one configuration that goes through the same validation and atomic swap
//! as a file, much as Magic Transit's daemons read their configuration from Quicksilver.
//!
//! Keys under the prefix:
//!
//! - `server`: everything but the customers (`[server]`, `[dos]`, `[health]`,
//!   `[soft_unicast]`, ...), as TOML;
//! - `customers/NAME`: one `[[customer]]` named NAME with its tunnels, routes and rules.
//!
//! Errors name the key: `etcd:/transitd/customers/acme:4:9: unknown tunnel`. A thread with
//! its own small async runtime (etcd-client is async) gets the prefix, hands the keys to
//! the main loop, and watches for changes; when etcd goes away it says so once, keeps
//! retrying, and the last good configuration keeps running meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::config::{ConfigError, ConfigErrors, Loaded, SourceMap, SourcePos};

/// Where the configuration lives in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSource {
    /// `http://HOST:PORT` (or `HOST:PORT`), or several, comma-separated: the cluster's
    /// members, any of which answers.
    pub endpoint: String,
    /// The key prefix, e.g. `/transitd/`.
    pub prefix: String,
}

impl EtcdSource {
    /// The members to ask, in the order given.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoint.split(',').map(str::trim).filter(|e| !e.is_empty())
    }
}

impl std::fmt::Display for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd {} prefix {}", self.endpoint, self.prefix)
    }
}

/// The keys under the prefix at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Key (whole) to value.
    pub keys: BTreeMap<String, String>,
    /// Keys whose value is not UTF-8, with the line and column of its first invalid byte
    /// (left out of `keys`: a configuration file with such bytes is refused too).
    pub not_utf8: BTreeMap<String, (usize, usize)>,
    /// The store's revision they were read at.
    pub revision: i64,
    /// Bytes read when reading stopped, the prefix holding more than a configuration may:
    /// the keys are the part read.
    pub beyond: Option<u64>,
}

impl Fetched {
    /// Whether `other` holds the same keys and values. The revision is the whole store's,
    /// which any write anywhere in etcd moves: alike by it, nothing is new.
    pub fn same_content(&self, other: &Fetched) -> bool {
        self.keys == other.keys && self.not_utf8 == other.not_utf8 && self.beyond == other.beyond
    }
}

/// The prefix holds `bytes` bytes, more than a configuration may.
fn too_large(prefix: &str, bytes: &str) -> ConfigErrors {
    let message = format!(
        "{bytes} bytes under the prefix, more than {}, the most transitd reads as a configuration",
        crate::limits::MAX_CONFIG_BYTES
    );
    ConfigErrors(vec![ConfigError::new(whole(&format!("etcd:{prefix}")), message)])
}

fn whole(name: &str) -> SourcePos {
    SourcePos { file: name.to_string(), line: 0, col: 0 }
}

/// [`assemble`] of what was read, refusing it whole if a value is not UTF-8 text. The other
/// keys' faults are said with it: one key's bytes must not hide them.
pub fn assemble_fetched(prefix: &str, fetched: &Fetched) -> Result<Loaded, ConfigErrors> {
    if let Some(read) = fetched.beyond {
        return Err(too_large(prefix, &format!("over {read}")));
    }
    if fetched.not_utf8.is_empty() {
        return assemble(prefix, &fetched.keys);
    }
    let mut errors: Vec<ConfigError> = fetched
        .not_utf8
        .iter()
        .map(|(key, &(line, col))| {
            let at = SourcePos { file: format!("etcd:{key}"), line, col };
            ConfigError::new(at, "not UTF-8 text: an invalid byte")
        })
        .collect();
    let of_unreadable_key =
        |e: &ConfigError| e.at.file.strip_prefix("etcd:").is_some_and(|k| fetched.not_utf8.contains_key(k));
    if let Err(ConfigErrors(others)) = assemble(prefix, &fetched.keys) {
        // A server key that is no text is not also missing.
        errors.extend(others.into_iter().filter(|e| !of_unreadable_key(e)));
    }
    Err(sorted_by_key(errors))
}

/// Assembles the keys under `prefix` into one configuration: the server key first, then
/// each customer key, each keeping its own name and lines in errors.
pub fn assemble(prefix: &str, keys: &BTreeMap<String, String>) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    // The server key's text once it is TOML (and holds no customer), and whether there is one.
    let (mut server, mut server_written) = (None, false);
    let mut customers = Vec::new();
    // The prefix is one configuration: the same bound as a file, checked before any parsing.
    let total: u64 = keys.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    if total > crate::limits::MAX_CONFIG_BYTES {
        return Err(too_large(prefix, &total.to_string()));
    }
    for (key, value) in keys {
        let name = format!("etcd:{key}");
        match key.strip_prefix(prefix) {
            Some("server") => {
                server_written = true;
                match parses_alone(&name, value) {
                    Ok(table) if table.contains_key("customer") => errors.push(ConfigError::new(
                        whole(&name),
                        format!("customers go in their own keys, {prefix}customers/NAME, not in the server key"),
                    )),
                    Ok(_) => server = Some((name, value.clone())),
                    Err(e) => errors.push(e),
                }
            }
            Some(rest) if rest.starts_with("customers/") => {
                let customer = &rest["customers/".len()..];
                match parses_alone(&name, value).map(|table| check_customer(customer, value, &table)) {
                    Ok(Ok(())) => customers.push((name, value.clone())),
                    Ok(Err(message)) => errors.push(ConfigError::new(whole(&name), message)),
                    Err(e) => errors.push(e),
                }
            }
            _ => errors.push(ConfigError::new(
                whole(&name),
                format!("not a transitd key: expected {prefix}server or {prefix}customers/NAME"),
            )),
        }
    }
    if !server_written {
        errors.push(ConfigError::new(
            whole(&format!("etcd:{prefix}server")),
            "missing: the server section ([server] and the other non-customer sections)",
        ));
    }
    if errors.is_empty()
        && let Some(server) = &server
    {
        let mut parts = vec![server.clone()];
        parts.extend(customers.iter().cloned());
        match crate::config::parse_source(SourceMap::joined(&parts)) {
            Ok(loaded) => return Ok(loaded),
            // The keys read alone say their faults, this one among them.
            Err(joined) => {
                let each = faults_of_each_key(Some(server), &customers);
                return Err(if each.is_empty() { joined } else { sorted_by_key(each) });
            }
        }
    }
    // Something is wrong already: what else is, in the keys that are TOML, is said with it.
    errors.extend(faults_of_each_key(server.as_ref(), &customers));
    Err(sorted_by_key(errors))
}

/// A customer key read alone: its one `[[customer]]` ([`check_customer`] has held it to one).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerKey {
    #[serde(rename = "customer")]
    _customers: Vec<crate::config::CustomerSection>,
}

/// The first fault of each key that is TOML by itself (an unknown key, a value of the wrong
/// type), each read alone as the joined text is read. toml stops at a text's first fault, so
/// read joined, one key's fault hid every other key's, and a fleet's operator found them one
/// rejected write at a time.
fn faults_of_each_key(server: Option<&(String, String)>, customers: &[(String, String)]) -> Vec<ConfigError> {
    let server = server.and_then(|(name, value)| {
        crate::config::read_as::<crate::config::ConfigFile>(&SourceMap::new(name, value)).err()
    });
    let customers = customers
        .iter()
        .filter_map(|(name, value)| crate::config::read_as::<CustomerKey>(&SourceMap::new(name, value)).err());
    server.into_iter().chain(customers).collect()
}

/// `errors` in the order of their keys (each key's name is its errors' file), as etcd lists
/// the keys; a key's own errors keep their order.
fn sorted_by_key(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by(|a, b| a.at.file.cmp(&b.at.file));
    ConfigErrors(errors)
}

/// A key's text parsed on its own. Each must be TOML by itself: joined, a string one key
/// opens and never closes would take in the next keys' text, tables and all. Its fault is
/// said as a file's is: the duplicate key named, an address told to be quoted.
fn parses_alone(name: &str, value: &str) -> Result<toml::Table, ConfigError> {
    crate::config::read_as::<toml::Table>(&SourceMap::new(name, value))
}

/// A customer key holds exactly one `[[customer]]` table (`table` is `value` parsed), named
/// as the key is. The inline form (`customer = [{ ... }]`) is refused: joined after the
/// server key, it would be a key of the server key's last table.
fn check_customer(name: &str, value: &str, table: &toml::Table) -> Result<(), String> {
    // The table header as TOML allows it: `[[ customer ]]` and `[["customer"]]` too.
    let header = |l: &str| l.replace([' ', '\t', '"', '\''], "").starts_with("[[customer]]");
    if !value.lines().any(header) {
        return Err(format!("a customer key holds one [[customer]] table (named `{name}`), written as one"));
    }
    let list = table.get("customer").and_then(|c| c.as_array());
    let only = table.len() == 1 && list.is_some_and(|l| l.len() == 1);
    if !only {
        return Err(format!("a customer key holds exactly one [[customer]] (named `{name}`) and nothing else"));
    }
    let named = list.and_then(|l| l[0].get("name")).and_then(|n| n.as_str());
    if named != Some(name) {
        return Err(format!("the key names customer `{name}` but its [[customer]] is named `{}`", named.unwrap_or("")));
    }
    Ok(())
}

/// Where the watcher leaves the newest keys for the main loop (newest wins).
pub type Slot = Arc<Mutex<Option<Fetched>>>;

pub use client::{fetch, watch};

#[cfg(feature = "etcd")]
mod client;
#[cfg(not(feature = "etcd"))]
#[path = "no_client.rs"]
mod client;

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const SERVER: &str = "[server]\nanycast = \"192.0.2.1\"\n";
    const ACME: &str = "[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n";

    #[test]
    fn keys_assemble_into_one_configuration() {
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", ACME)]);
        let loaded = assemble("/t/", &k).unwrap();
        let snap = crate::snapshot::Snapshot::build(&loaded).unwrap();
        assert_eq!(snap.customers.len(), 1);
        assert_eq!(snap.customers[0].name, "acme");
    }

    /// The header may be written as TOML allows it, with spaces or quotes.
    #[test]
    fn a_customer_header_with_spaces_or_quotes_is_one() {
        for header in ["[[ customer ]]", "[[\"customer\"]]", "  [[customer]]"] {
            let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", &ACME.replace("[[customer]]", header))]);
            let snap = crate::snapshot::Snapshot::build(&assemble("/t/", &k).unwrap());
            assert_eq!(snap.map(|s| s.customers.len()).ok(), Some(1), "{header}");
        }
    }

    #[test]
    fn errors_name_the_key_and_its_own_line() {
        let bad = "[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/33\"]\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", bad)]);
        let errors = crate::snapshot::Snapshot::build(&assemble("/t/", &k).unwrap()).unwrap_err().to_string();
        assert!(errors.starts_with("etcd:/t/customers/acme:3:"), "{errors}");
    }

    /// Every key's fault is said at once: toml stops at a text's first fault, and read joined,
    /// one customer key's typo hid another's value of the wrong type and the server key's
    /// typo, each found only once the one before it was fixed, a rejected write at a time.
    #[test]
    fn every_keys_fault_is_said_at_once() {
        let typo = "[[customer]]\nname = \"acme\"\nprefixs = []\n";
        let wrong_type = "[[customer]]\nname = \"beta\"\nprefixes = []\n[[customer.tunnel]]\nname = \"b\"\n\
                          remote = \"198.51.100.9\"\nkey = \"seven\"\n";
        let server = format!("{SERVER}anycats = 1\n");
        let k = keys(&[("/t/server", &server), ("/t/customers/acme", typo), ("/t/customers/beta", wrong_type)]);
        let errors: Vec<String> = assemble("/t/", &k).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("etcd:/t/customers/acme:3:1: unknown field `prefixs`: did you mean `prefixes`?"));
        assert_eq!(errors[1], "etcd:/t/customers/beta:7:7: invalid type: string \"seven\", expected u32");
        assert!(errors[2].starts_with("etcd:/t/server:3:1: unknown field `anycats`: did you mean `anycast`?"));
        // A key that is no TOML at all hides no other key's fault either.
        let broken = "[[customer]]\nname = \"beta\"\nprefixes = [\"198.18.100.0/24\"\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", typo), ("/t/customers/beta", broken)]);
        let errors: Vec<String> = assemble("/t/", &k).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("etcd:/t/customers/acme:3:1: unknown field `prefixs`"), "{errors:?}");
        assert_eq!(errors[1], "etcd:/t/customers/beta:3:30: unclosed array, expected `]`");
        // Good keys beside them are said nothing of, and fixed, the keys assemble.
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", &typo.replace("prefixs", "prefixes"))]);
        assert!(assemble("/t/", &k).is_ok());
    }

    /// A key's syntax error is said in the words a file's is: the duplicate key named, an
    /// address written bare told to be quoted (toml says only "duplicate key", "invalid float").
    #[test]
    fn a_keys_syntax_error_is_said_as_a_files_is() {
        let twice = "[[customer]]\nname = \"acme\"\nname = \"acme\"\nprefixes = []\n";
        let bare = "[server]\nanycast = 192.0.2.1\n";
        let k = keys(&[("/t/server", bare), ("/t/customers/acme", twice)]);
        let errors: Vec<String> = assemble("/t/", &k).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[0],
            "etcd:/t/customers/acme:3:1: duplicate key `name`: a key is set once in its table, and a [table] \
             written once"
        );
        assert!(errors[1].starts_with("etcd:/t/server:2:"), "{errors:?}");
        assert!(errors[1].ends_with(": an address is a string in TOML: write \"192.0.2.1\""), "{errors:?}");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_at_its_key() {
        let fetched = Fetched {
            keys: keys(&[("/t/server", SERVER)]),
            not_utf8: [("/t/customers/acme".to_string(), (3, 27))].into(),
            revision: 1,
            beyond: None,
        };
        let errors = assemble_fetched("/t/", &fetched).unwrap_err().to_string();
        assert_eq!(errors.trim_end(), "etcd:/t/customers/acme:3:27: not UTF-8 text: an invalid byte");
        // Another key's fault is said with it, and a server key that is no text is not also
        // said to be missing.
        let typo = "[[customer]]\nname = \"beta\"\nprefixs = []\n";
        let mut more = fetched.clone();
        more.keys.insert("/t/customers/beta".into(), typo.into());
        more.not_utf8.insert("/t/server".into(), (1, 2));
        more.keys.remove("/t/server");
        let errors: Vec<String> =
            assemble_fetched("/t/", &more).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0], "etcd:/t/customers/acme:3:27: not UTF-8 text: an invalid byte");
        assert!(errors[1].starts_with("etcd:/t/customers/beta:3:1: unknown field `prefixs`"), "{errors:?}");
        assert_eq!(errors[2], "etcd:/t/server:1:2: not UTF-8 text: an invalid byte");
        let whole = Fetched { not_utf8: BTreeMap::new(), ..fetched };
        assert!(assemble_fetched("/t/", &whole).is_ok());
    }

    #[test]
    fn relative_file_paths_are_refused_from_etcd() {
        let list = "[[list]]\nname = \"bad\"\nfile = \"bad.txt\"\n";
        let k = keys(&[("/t/server", &format!("{SERVER}{list}"))]);
        let loaded = assemble("/t/", &k).unwrap();
        let errors = crate::snapshot::Snapshot::build(&loaded).err().unwrap().to_string();
        assert!(
            errors.contains("list file `bad.txt` is a relative path, and a configuration from etcd has no directory"),
            "{errors}"
        );
        assert!(errors.starts_with("etcd:/t/server:"), "{errors}");
    }

    #[test]
    fn keys_that_do_not_fit_are_rejected() {
        let other = "[[customer]]\nname = \"other\"\nprefixes = []\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", other), ("/t/stray", "x = 1")]);
        let errors = assemble("/t/", &k).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/customers/acme: the key names customer `acme`"), "{errors}");
        assert!(errors.contains("etcd:/t/stray: not a transitd key"), "{errors}");
        let errors = assemble("/t/", &keys(&[("/t/customers/acme", ACME)])).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/server: missing"), "{errors}");
        let k = keys(&[("/t/server", &format!("{SERVER}{ACME}"))]);
        assert!(assemble("/t/", &k).unwrap_err().to_string().contains("their own keys"));
    }

    /// Each key is TOML on its own: joined, a string the first opens and the second closes
    /// would make the second's tables part of a string, and what it "closes" with be read as
    /// tables of the first. The inline form of a customer is refused by name, rather than
    /// read as a key of the server key's last table.
    #[test]
    fn each_key_must_stand_on_its_own() {
        let opens = "[[customer]]\nname = \"acme\"\nnote = \"\"\"\n";
        let closes = "\"\"\"\n[server]\nanycast = \"192.0.2.9\"\n[[customer]]\nname = \"zeta\"\nprefixes = []\n";
        let k = keys(&[("/t/server", SERVER), ("/t/customers/acme", opens), ("/t/customers/zeta", closes)]);
        let errors = assemble("/t/", &k).unwrap_err().to_string();
        // Each at a position in its own key (where toml found the text to end wrongly).
        assert!(errors.contains("etcd:/t/customers/acme:4:1: invalid multi-line basic string"), "{errors}");
        assert!(errors.contains("etcd:/t/customers/zeta:"), "{errors}");
        let inline = "customer = [{ name = \"acme\", prefixes = [\"203.0.113.0/24\"] }]\n";
        let k = keys(&[("/t/server", "[bgp]\n"), ("/t/customers/acme", inline)]);
        let errors = assemble("/t/", &k).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/customers/acme: a customer key holds one [[customer]] table"), "{errors}");
        let broken = keys(&[("/t/server", "[server\n"), ("/t/customers/acme", ACME)]);
        let errors = assemble("/t/", &broken).unwrap_err().to_string();
        assert!(errors.contains("etcd:/t/server:1:"), "{errors}");
        assert!(!errors.contains("missing"), "{errors}");
    }
}
