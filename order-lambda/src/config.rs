//! Configuration from the environment, one way for every function: a function's `Config`
//! declares the variables it requires and reads if set ([`FromEnv::REQUIRED`],
//! [`FromEnv::OPTIONAL`]: the template test checks `template.yaml` sets exactly these) and how
//! it reads them ([`FromEnv::read`]); [`FromEnv::from_env`] does the rest, reporting every
//! problem at once.

/// One variable that is missing or does not hold what it must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub name: String,
    /// What is wrong, readable after `NAME: ` (`missing`, `must be …, got "abc"`).
    pub problem: String,
}

/// Configuration a function cannot start with: every problem at once, so one failed cold start
/// tells the operator everything to fix.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", describe(.0))]
pub struct ConfigError(pub Vec<ConfigProblem>);

fn describe(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.name, p.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

// A `main` that returns this error prints its `Debug` form: make that the readable message.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A variable name to its value.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads variables through a lookup (the process environment, or a table in tests) and collects
/// every problem instead of stopping at the first; [`EnvReader::finish`] reports them together.
/// A value that is empty or only whitespace counts as unset: a template or shell that sets
/// `NAME=` meant no value.
pub struct EnvReader<'a> {
    lookup: Lookup<'a>,
    problems: Vec<ConfigProblem>,
}

impl EnvReader<'static> {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        EnvReader::new(|name| std::env::var(name).ok())
    }
}

impl<'a> EnvReader<'a> {
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        EnvReader {
            lookup: Box::new(lookup),
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn problem(&mut self, name: &str, problem: String) {
        self.problems.push(ConfigProblem {
            name: name.to_owned(),
            problem,
        });
    }

    /// The value of `name`; if it is unset, an empty string stands in and `finish` fails.
    pub fn required(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(value) => value,
            None => {
                self.problem(name, "missing".to_owned());
                String::new()
            }
        }
    }

    /// `None` if `name` is unset; its parsed value if it parses; otherwise `None` and `finish`
    /// fails with `NAME: <what>, got "<value>"` (`what` reads like "must be an integer").
    pub fn optional_parsed<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let raw = self.get(name)?;
        match raw.trim().parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.problem(name, format!("{what}, got {raw:?}"));
                None
            }
        }
    }

    /// `config` if every variable read so far was fine, else every problem found.
    pub fn finish<T>(self, config: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

/// A function's configuration, read from its environment.
pub trait FromEnv: Sized {
    /// The variables [`read`](FromEnv::read) requires (`template.yaml` sets each of them).
    const REQUIRED: &'static [&'static str];
    /// The variables [`read`](FromEnv::read) reads if set (`template.yaml` sets no others).
    const OPTIONAL: &'static [&'static str];

    /// Reads every variable through `env`; a problem is collected by `env`, not returned.
    fn read(env: &mut EnvReader<'_>) -> Self;

    /// Reads the process environment.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (a variable name to its value) instead of the process environment.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let config = Self::read(&mut env);
        env.finish(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn every_missing_and_invalid_variable_is_named_at_once_readably() {
        let mut env = EnvReader::new(table(&[("B", "  "), ("LIMIT", "abc"), ("C", "c")]));
        let a = env.required("A");
        let b = env.required("B");
        let c = env.required("C");
        let limit: Option<i64> = env.optional_parsed("LIMIT", "must be an integer");
        let err = env.finish((a, b, c, limit)).unwrap_err();
        assert_eq!(
            format!("{err:?}"),
            r#"invalid configuration: A: missing; B: missing; LIMIT: must be an integer, got "abc""#
        );
    }

    #[test]
    fn set_variables_are_read_and_unset_optional_ones_are_none() {
        let mut env = EnvReader::new(table(&[("A", "a"), ("LIMIT", " 42 "), ("EMPTY", "")]));
        let a = env.required("A");
        let limit: Option<i64> = env.optional_parsed("LIMIT", "must be an integer");
        let unset: Option<i64> = env.optional_parsed("UNSET", "must be an integer");
        let empty: Option<i64> = env.optional_parsed("EMPTY", "must be an integer");
        assert_eq!(
            env.finish((a, limit, unset, empty)),
            Ok(("a".to_owned(), Some(42), None, None))
        );
    }
}
