//! The hook whitelist (the original's YAML): a command runs only when it is listed with
//! `allowed: true` and every argument matches one of its patterns whole. Deny by default.
//!
//! Stricter than the original: a command is a bare name (a path is refused, not reduced to
//! its basename), arguments and environment values may not hold NUL, and environment names
//! that change how programs load or find code (`LD_*`, `PATH`, `BASH_ENV`…) are refused.
//!
//! ```yaml
//! commands:
//!   jq:
//!     allowed: true
//!     argumentPatterns: ["^-[cr]$", "^\\.[A-Za-z0-9_.\\[\\]]*$"]
//!   rm:
//!     allowed: false
//! ```

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    commands: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    allowed: bool,
    #[serde(default)]
    argument_patterns: Vec<String>,
}

/// A parsed whitelist.
#[derive(Debug, Default)]
pub struct Whitelist {
    commands: BTreeMap<String, Vec<Regex>>,
}

/// Why a hook may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Environment names a hook may not set: they decide which code a program loads.
const FORBIDDEN_ENV: &[&str] = &[
    "PATH",
    "IFS",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "RUBYLIB",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "JQ_LIBRARY_PATH",
];

fn bare_name(command: &str) -> bool {
    !command.is_empty()
        && command
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
        && command != "."
        && command != ".."
}

impl Whitelist {
    /// Parses the YAML; a pattern that is not a regular expression is an error.
    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        let file: File = serde_norway::from_str(yaml)?;
        let mut commands = BTreeMap::new();
        for (name, entry) in file.commands {
            if !entry.allowed {
                continue;
            }
            anyhow::ensure!(
                bare_name(&name),
                "whitelist: {name:?} is not a command name"
            );
            let patterns = entry
                .argument_patterns
                .iter()
                // Whole arguments: `^a` must not let `a; rm -rf /` through.
                .map(|p| Regex::new(&format!("^(?:{p})$")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("whitelist: a pattern of {name}: {e}"))?;
            commands.insert(name, patterns);
        }
        Ok(Self { commands })
    }

    /// Whether `command` may run with `args` and `env`; says why not.
    pub fn check(
        &self,
        command: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(), Denied> {
        if !bare_name(command) {
            return Err(Denied(format!(
                "command {command:?} is not a plain command name"
            )));
        }
        let patterns = self.commands.get(command).ok_or_else(|| {
            Denied(format!(
                "command {command:?} is not allowed by the whitelist"
            ))
        })?;
        for arg in args {
            if arg.contains('\0') {
                return Err(Denied(format!("an argument of {command} holds a NUL byte")));
            }
            if !patterns.iter().any(|p| p.is_match(arg)) {
                return Err(Denied(format!(
                    "argument {arg:?} of {command} matches no allowed pattern"
                )));
            }
        }
        for (name, value) in env {
            let well_formed = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !well_formed || value.contains('\0') {
                return Err(Denied(format!(
                    "environment variable {name:?} is malformed"
                )));
            }
            let upper = name.to_ascii_uppercase();
            if FORBIDDEN_ENV.contains(&upper.as_str())
                || upper.starts_with("LD_")
                || upper.starts_with("DYLD_")
            {
                return Err(Denied(format!(
                    "environment variable {name} may not be set by a hook"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
commands:
  jq:
    allowed: true
    argumentPatterns: ['-[cr]', '\.[A-Za-z0-9_.\[\]]*']
  tr:
    allowed: true
    argumentPatterns: ['[a-z]-[a-z]', '[A-Z]-[A-Z]']
  rm:
    allowed: false
    argumentPatterns: ['.*']
"#;

    fn check(command: &str, args: &[&str]) -> Result<(), Denied> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        Whitelist::parse(YAML).unwrap().check(command, &args, &[])
    }

    #[test]
    fn allowed_commands_with_matching_arguments_run() {
        assert_eq!(check("jq", &["-c", ".items[0]"]), Ok(()));
        assert_eq!(check("tr", &["a-z", "A-Z"]), Ok(()));
        assert_eq!(check("jq", &[]), Ok(()));
    }

    #[test]
    fn everything_else_is_denied() {
        let attacks: &[(&str, &[&str])] = &[
            ("rm", &["-rf", "/"]),    // listed but not allowed
            ("sh", &["-c", "id"]),    // not listed
            ("/usr/bin/jq", &["-c"]), // a path, not a name
            ("../../bin/sh", &[]),    // a relative path
            ("./jq", &[]),
            ("jq;id", &[]), // shell metacharacters in the name
            ("jq id", &[]),
            ("jq", &["-c; rm -rf /"]), // a pattern matching a prefix only
            ("jq", &[".a$(id)"]),
            ("jq", &[".a`id`"]),
            ("jq", &["-L/tmp/evil"]), // argument injection: a library path
            ("jq", &["--from-file", "/etc/shadow"]),
            ("jq", &[".a\0-r"]),   // a NUL smuggling a second argument
            ("tr", &["a-z\nA-Z"]), // a newline inside a matched argument
            ("", &[]),
            ("..", &[]),
        ];
        for (command, args) in attacks {
            assert!(
                check(command, args).is_err(),
                "{command:?} {args:?} must be denied"
            );
        }
    }

    #[test]
    fn environment_tricks_are_denied() {
        let w = Whitelist::parse(YAML).unwrap();
        let env = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert!(w.check("jq", &[], &env("MODE", "fast")).is_ok());
        for (name, value) in [
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("ld_library_path", "/tmp"),
            ("PATH", "/tmp/evil"),
            ("BASH_ENV", "/tmp/x"),
            ("JQ_LIBRARY_PATH", "/tmp"),
            ("DYLD_INSERT_LIBRARIES", "x"),
            ("A=B", "c"),
            ("1X", "c"),
            ("OK", "a\0b"),
        ] {
            assert!(w.check("jq", &[], &env(name, value)).is_err(), "{name}");
        }
    }

    #[test]
    fn a_bad_file_is_refused_whole() {
        assert!(
            Whitelist::parse("commands:\n  jq:\n    allowed: true\n    argumentPatterns: ['(']\n")
                .is_err()
        );
        assert!(Whitelist::parse("commands:\n  /bin/sh:\n    allowed: true\n").is_err());
        assert!(
            Whitelist::parse("{}")
                .unwrap()
                .check("jq", &[], &[])
                .is_err(),
            "empty denies all"
        );
    }
}
