//! Reading a configuration: TOML text to [`Config`], every mistake reported as the file,
//! the key and the reason.

use std::fmt;
use std::path::Path;

use super::{Config, DEMO, DEMO_LABEL, validate};

/// One problem in a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file as named by the user.
        file: String,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, a key is unknown, or a value has the wrong type or shape.
    /// Parsing stops at the first such problem.
    #[error("{}", parse_message(file, key, *line, *column, reason))]
    Parse {
        /// The file as named by the user.
        file: String,
        /// Dotted key path such as `queue[1].ring_timeout`; empty for a pure syntax error.
        key: String,
        /// 1-based line of the offending text (0 when unknown).
        line: usize,
        /// 1-based column of the offending text (0 when unknown).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value that parsed but breaks a rule; all such problems are reported together.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The file as named by the user.
        file: String,
        /// Dotted key path such as `route[0].queue`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn parse_message(file: &str, key: &str, line: usize, column: usize, reason: &str) -> String {
    let place = if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    };
    if key.is_empty() {
        format!("{file}: {reason}{place}")
    } else {
        format!("{file}: {key}: {reason}{place}")
    }
}

/// Every problem found in one configuration file, printed one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Reads and validates the file at `path`; messages name the path as given.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| {
        ConfigErrors(vec![ConfigError::Read {
            file: file.clone(),
            source,
        }])
    })?;
    from_str(&text, &file)
}

/// Parses and validates configuration text; `file_label` names it in messages.
pub fn from_str(text: &str, file_label: &str) -> Result<Config, ConfigErrors> {
    let deserializer = toml::Deserializer::new(text);
    let mut config: Config = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| ConfigErrors(vec![parse_error(text, file_label, e)]))?;
    let errors = validate::validate(&config, file_label);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let all: Vec<String> = config.queues.iter().map(|q| q.name.clone()).collect();
    for agent in &mut config.agents {
        if agent.queues.is_empty() {
            agent.queues.clone_from(&all);
        }
    }
    Ok(config)
}

fn parse_error(
    text: &str,
    file: &str,
    error: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let key = error.path().to_string();
    let inner = error.into_inner();
    let (line, column) = inner
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((0, 0));
    ConfigError::Parse {
        file: file.to_owned(),
        key: if key == "." { String::new() } else { key },
        line,
        column,
        // toml explains some syntax errors over two lines; a report line must stay one line.
        reason: inner
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The built-in demo configuration (loopback only): the example `holdfast.toml`.
pub fn demo() -> Config {
    from_str(DEMO, DEMO_LABEL).expect("the embedded example configuration is valid (tested)")
}
