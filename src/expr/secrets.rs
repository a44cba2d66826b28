//! `${secret:name}`: resolution at spawn time and the two providers (environment and file).
//! Secret values never appear in Debug output, errors or logs.

use super::{Error, SecretProvider};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A secret value. Its `Debug` prints `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Replaces every `${secret:name}` in `text` by the provider's value. Another command than
/// `secret` (`${foo:bar}`) is an error, as in Digdag; errors name the secret, never a value.
pub fn resolve_secrets(text: &str, provider: &dyn SecretProvider) -> Result<String, Error> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let body = &rest[i + 2..];
        let letters = body.bytes().take_while(u8::is_ascii_lowercase).count();
        let is_reference = letters > 0 && body.as_bytes().get(letters) == Some(&b':');
        let close = body.find('}');
        let (true, Some(close)) = (is_reference, close) else {
            out.push_str(&rest[..i + 2]);
            rest = body;
            continue;
        };
        let command = &body[..letters];
        let name = body[letters + 1..close].trim();
        if command != "secret" {
            return Err(Error::SecretReference {
                reference: body[..close].to_string(),
            });
        }
        let value = provider.secret(name).ok_or_else(|| Error::UnknownSecret {
            name: name.to_string(),
        })?;
        out.push_str(&rest[..i]);
        out.push_str(&value);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Secrets from the environment: `db.password` is `SPADE_SECRET_DB_PASSWORD` (`.` and `-`
/// become `_`, upper-cased).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecrets;

impl EnvSecrets {
    pub fn variable_name(name: &str) -> String {
        format!(
            "SPADE_SECRET_{}",
            name.replace(['.', '-'], "_").to_ascii_uppercase()
        )
    }
}

impl SecretProvider for EnvSecrets {
    fn secret(&self, name: &str) -> Option<String> {
        std::env::var(Self::variable_name(name)).ok()
    }
}

/// Secrets from a flat file: `name: value` (YAML style) or `name=value` lines; `#` comments
/// and blank lines are skipped; a value may be quoted with `"` or `'`.
pub struct FileSecrets {
    values: HashMap<String, Secret>,
}

impl std::fmt::Debug for FileSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        f.debug_struct("FileSecrets")
            .field("names", &names)
            .finish()
    }
}

impl FileSecrets {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<FileSecrets, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::SecretsFile {
            path: path.to_path_buf(),
            source,
        })?;
        FileSecrets::parse(&text, path)
    }

    /// Parses file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<FileSecrets, Error> {
        let mut values = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let split = match (line.find(':'), line.find('=')) {
                (Some(c), Some(e)) => Some(c.min(e)),
                (c, e) => c.or(e),
            };
            let Some(at) = split else {
                return Err(Error::SecretsSyntax {
                    path: PathBuf::from(path),
                    line: n + 1,
                });
            };
            let name = line[..at].trim();
            let value = unquote(line[at + 1..].trim());
            if name.is_empty() {
                return Err(Error::SecretsSyntax {
                    path: PathBuf::from(path),
                    line: n + 1,
                });
            }
            values.insert(name.to_string(), Secret(value.to_string()));
        }
        Ok(FileSecrets { values })
    }
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

impl SecretProvider for FileSecrets {
    fn secret(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|s| s.expose().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl SecretProvider for Fixed {
        fn secret(&self, name: &str) -> Option<String> {
            (name == "db.password").then(|| "hunter2".to_string())
        }
    }

    #[test]
    fn resolves_secrets_and_names_unknown_ones_without_values() {
        assert_eq!(
            resolve_secrets("pw=${secret:db.password} $HOME ${x", &Fixed).unwrap(),
            "pw=hunter2 $HOME ${x"
        );
        let err = resolve_secrets("${secret:nope}", &Fixed).unwrap_err();
        assert!(err.to_string().contains("`nope`"));
        assert!(resolve_secrets("${foo:bar}", &Fixed).is_err());
    }

    #[test]
    fn secret_debug_is_masked() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "***");
        let f = FileSecrets::parse("a: hunter2\nb=\"x y\"\n# c\n", Path::new("s")).unwrap();
        assert!(!format!("{f:?}").contains("hunter2"));
        assert_eq!(f.secret("a").as_deref(), Some("hunter2"));
        assert_eq!(f.secret("b").as_deref(), Some("x y"));
        assert!(FileSecrets::parse("novalue\n", Path::new("s")).is_err());
    }

    #[test]
    fn env_variable_names_are_normalised() {
        assert_eq!(
            EnvSecrets::variable_name("td.api-key"),
            "SPADE_SECRET_TD_API_KEY"
        );
    }
}
