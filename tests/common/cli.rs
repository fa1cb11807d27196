//! The `social-reward` binary run the way a user runs it, after ripgrep's `tests/util.rs`: a
//! small builder whose checks, when they fail, say what ran and everything it printed.
//!
//! ```ignore
//! let summary = Cli::new().args(["--quiet", "validate", CORPUS]).run_json();
//! let failed = Cli::new().args(["--quiet", "run", "nope.toml"]).run_fail();
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// One invocation of the binary: its arguments and the environment it changes.
#[derive(Debug, Clone, Default)]
pub struct Cli {
    args: Vec<OsString>,
    /// `Some(value)` sets the variable, `None` removes it.
    env: Vec<(OsString, Option<OsString>)>,
    /// Where it runs (the test's own working directory when `None`).
    dir: Option<std::path::PathBuf>,
}

impl Cli {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Runs it in `dir`, as a user who `cd`s there first.
    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The command, for callers that drive the process themselves (kill it, say); its stdio is
    /// left as `Command` leaves it.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_social-reward"));
        command.args(&self.args);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }

    /// Runs to the end, whatever the outcome.
    pub fn output(&self) -> Run {
        let output = self
            .command()
            .output()
            .unwrap_or_else(|e| panic!("{self}: could not run: {e}"));
        Run::new(self.to_string(), output)
    }

    /// Runs to the end; panics, showing all it printed, unless it succeeded.
    pub fn run_ok(&self) -> Run {
        self.output().success()
    }

    /// Runs to the end; panics, showing all it printed, if it succeeded.
    pub fn run_fail(&self) -> Run {
        self.output().failure()
    }

    /// Runs to the end, which must be a success that printed one JSON line (the commands'
    /// summaries), and parses that line.
    pub fn run_json(&self) -> serde_json::Value {
        self.run_ok().json()
    }

    /// Starts it with stdout and stderr captured.
    pub fn spawn(&self) -> Running {
        let child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{self}: could not start: {e}"));
        Running {
            child,
            command: self.to_string(),
        }
    }
}

/// The command line as a shell would take it, environment changes first.
impl fmt::Display for Cli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn word(text: &OsStr) -> String {
            let text = text.to_string_lossy();
            let plain = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
            if plain {
                text.into_owned()
            } else {
                format!("'{}'", text.replace('\'', r"'\''"))
            }
        }
        if let Some(dir) = &self.dir {
            write!(f, "cd {} && ", word(dir.as_os_str()))?;
        }
        if !self.env.is_empty() {
            write!(f, "env ")?;
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => write!(f, "{}={} ", word(key), word(value))?,
                None => write!(f, "-u {} ", word(key))?,
            }
        }
        write!(f, "social-reward")?;
        for arg in &self.args {
            write!(f, " {}", word(arg))?;
        }
        Ok(())
    }
}

/// A started process (see [`Cli::spawn`]).
pub struct Running {
    child: Child,
    command: String,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the end, whatever the outcome.
    pub fn wait(self) -> Run {
        let output = self
            .child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{}: waiting: {e}", self.command));
        Run::new(self.command, output)
    }
}

/// A finished run: what ran, how it ended, and what it printed.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn new(command: String, output: Output) -> Self {
        let stdout = String::from_utf8(output.stdout).unwrap_or_else(|e| {
            panic!(
                "{command}: stdout is not UTF-8 ({e}):\n{}",
                String::from_utf8_lossy(e.as_bytes())
            )
        });
        Self {
            command,
            status: output.status,
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// This run, which must have succeeded.
    pub fn success(self) -> Self {
        assert!(self.status.success(), "the command failed\n{self}");
        self
    }

    /// This run, which must have failed.
    pub fn failure(self) -> Self {
        assert!(!self.status.success(), "the command succeeded\n{self}");
        self
    }

    /// stdout as one JSON line.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.stdout.lines().count(),
            1,
            "stdout is not one JSON line\n{self}"
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{self}"))
    }

    /// stdout as JSON lines, one value per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("line {} of stdout is not JSON: {e}\n{self}", i + 1))
            })
            .collect()
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}
