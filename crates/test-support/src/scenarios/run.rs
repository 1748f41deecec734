//! Running a scenario: its inputs written, its steps run, and what every step
//! saw recorded with machine-specific strings replaced by placeholders.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::{fs, io};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::peer::Peer;

use super::values::{mask_volatile, sha256_hex};
use super::{Expect, InputFile, InputKind, Scenario, Step, StoreRole, Stores, SOURCE_STORE, STORE};

/// Why a scenario could not run to its end. A step that merely fails (a non-zero exit
/// status) is not an error: it is recorded in the [`StepRecord`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// An input file or redirection could not be prepared.
    #[error("scenario {scenario}: {action} {}: {source}", path.display())]
    Io {
        /// The scenario.
        scenario: &'static str,
        /// What was being done, for example "writing".
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A client could not be started or waited for.
    #[error("scenario {scenario}, step {step}: {source}")]
    Harness {
        /// The scenario.
        scenario: &'static str,
        /// The step's index.
        step: usize,
        /// The underlying error.
        #[source]
        source: HarnessError,
    },
    /// A step that binds a variable failed or printed nothing, so later steps cannot run.
    #[error(
        "scenario {scenario}, step {step} (`{argv}`) should bind ${var} but exited with \
         {status}; stderr:\n{stderr}"
    )]
    NoValue {
        /// The scenario.
        scenario: &'static str,
        /// The step's index.
        step: usize,
        /// The step's command line.
        argv: String,
        /// The variable.
        var: &'static str,
        /// How the client exited.
        status: String,
        /// The client's standard error, with placeholders.
        stderr: String,
    },
    /// A step refers to a variable no earlier step bound.
    #[error("scenario {scenario}, step {step}: unknown variable {var}")]
    UnknownVariable {
        /// The scenario.
        scenario: &'static str,
        /// The step's index.
        step: usize,
        /// The variable, with its `$`.
        var: &'static str,
    },
    /// The scenario needs a store that was not given.
    #[error("scenario {scenario} needs a {role:?} store, which was not given")]
    MissingStore {
        /// The scenario.
        scenario: &'static str,
        /// The missing store.
        role: StoreRole,
    },
}

/// The size and SHA-256 of a file a step wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The path, relative to the working directory.
    pub path: String,
    /// The size in bytes.
    pub bytes: u64,
    /// The SHA-256, in lowercase hex.
    pub sha256: String,
}

/// What one step did, with placeholders for machine-specific strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The argument vector, program first; variables are replaced by their values (store
    /// paths, which are the same everywhere) and store URIs by placeholders.
    pub argv: Vec<String>,
    /// The store the client talked to (`NIX_REMOTE`).
    pub store: StoreRole,
    /// The working directory's file fed to standard input, if any.
    pub stdin_file: Option<String>,
    /// Standard output as text (lossy UTF-8), empty when it went to a file.
    pub stdout: String,
    /// The file standard output went to, if any.
    pub stdout_file: Option<FileDigest>,
    /// Standard error as text (lossy UTF-8).
    pub stderr: String,
    /// The exit code, or `None` when the client was killed by a signal.
    pub exit_code: Option<i32>,
    /// Whether the step was expected to succeed.
    pub expect: Expect,
}

impl StepRecord {
    /// Tells whether the exit status is the expected one.
    pub fn as_expected(&self) -> bool {
        match self.expect {
            Expect::Success => self.exit_code == Some(0),
            Expect::Failure => self.exit_code.is_some_and(|code| code != 0),
        }
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

/// A description of one input entry, for records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The path, relative to the working directory.
    pub path: String,
    /// `file`, `executable`, `symlink` or `directory`.
    pub kind: String,
    /// The size in bytes of a file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// The SHA-256 of a file, in lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// The target of a symlink.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
}

/// The result of running a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRun {
    /// The scenario's name.
    pub scenario: String,
    /// The exact Nix version of the client.
    pub client_nix_version: String,
    /// The inputs written into the working directory.
    pub inputs: Vec<InputRecord>,
    /// The steps, in order.
    pub steps: Vec<StepRecord>,
}

impl ScenarioRun {
    /// Descriptions of the steps whose exit status was not the expected one.
    pub fn unexpected_outcomes(&self) -> Vec<String> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, step)| !step.as_expected())
            .map(|(index, step)| {
                format!(
                    "step {index} `{}` exited with {:?}, expected {:?}; stderr:\n{}",
                    step.command_line(),
                    step.exit_code,
                    step.expect,
                    step.stderr
                )
            })
            .collect()
    }

    /// Tells how two runs differ, in argument vectors, standard output (and the files it went
    /// to), standard error and exit status; empty when they do not. Outputs are compared after
    /// [`mask_volatile`].
    pub fn differences(&self, other: &ScenarioRun) -> Vec<String> {
        let mut found = Vec::new();
        if self.steps.len() != other.steps.len() {
            found.push(format!(
                "{} steps versus {}",
                self.steps.len(),
                other.steps.len()
            ));
        }
        for (index, (a, b)) in self.steps.iter().zip(&other.steps).enumerate() {
            let line = a.command_line();
            if a.argv != b.argv {
                found.push(format!(
                    "step {index}: argv `{line}` versus `{}`",
                    b.command_line()
                ));
            }
            if a.exit_code != b.exit_code {
                found.push(format!(
                    "step {index} `{line}`: exit code {:?} versus {:?}",
                    a.exit_code, b.exit_code
                ));
            }
            if mask_volatile(&a.stdout) != mask_volatile(&b.stdout)
                || a.stdout_file != b.stdout_file
            {
                found.push(format!(
                    "step {index} `{line}`: stdout differs:\n--- first\n{}{:?}\n--- second\n{}{:?}",
                    a.stdout, a.stdout_file, b.stdout, b.stdout_file
                ));
            }
            if mask_volatile(&a.stderr) != mask_volatile(&b.stderr) {
                found.push(format!(
                    "step {index} `{line}`: stderr differs:\n--- first\n{}\n--- second\n{}",
                    a.stderr, b.stderr
                ));
            }
        }
        found
    }
}

impl Scenario {
    /// The steps for a client of `client`'s version.
    pub fn steps(&self, client: &Peer) -> Vec<Step> {
        (self.steps)(client)
    }

    /// Writes the scenario's inputs into `work`, which should be empty.
    pub fn write_inputs(&self, work: &Path) -> Result<Vec<InputRecord>, ScenarioError> {
        let mut records = Vec::new();
        for input in self.inputs {
            for entry in input.files() {
                records.push(self.write_input(work, &entry)?);
            }
        }
        Ok(records)
    }

    pub(super) fn write_input(
        &self,
        work: &Path,
        entry: &InputFile,
    ) -> Result<InputRecord, ScenarioError> {
        let path = work.join(entry.path);
        let io_error = |action, source| ScenarioError::Io {
            scenario: self.name,
            action,
            path: path.clone(),
            source,
        };
        let record = match &entry.kind {
            InputKind::Directory => {
                fs::create_dir(&path).map_err(|err| io_error("creating", err))?;
                InputRecord {
                    path: entry.path.to_owned(),
                    kind: "directory".to_owned(),
                    bytes: None,
                    sha256: None,
                    target: None,
                }
            }
            InputKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path)
                    .map_err(|err| io_error("creating", err))?;
                InputRecord {
                    path: entry.path.to_owned(),
                    kind: "symlink".to_owned(),
                    bytes: None,
                    sha256: None,
                    target: Some((*target).to_owned()),
                }
            }
            InputKind::File {
                contents,
                executable,
            } => {
                fs::write(&path, contents).map_err(|err| io_error("writing", err))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(|err| io_error("setting the mode of", err))?;
                InputRecord {
                    path: entry.path.to_owned(),
                    kind: if *executable { "executable" } else { "file" }.to_owned(),
                    bytes: Some(contents.len() as u64),
                    sha256: Some(sha256_hex(contents)),
                    target: None,
                }
            }
        };
        Ok(record)
    }

    /// Writes the inputs into `work` (an empty directory, bound into chroot clients as their
    /// working directory) and runs every step with a client of `client`'s version.
    ///
    /// Steps whose exit status is unexpected do not stop the run; see
    /// [`ScenarioRun::unexpected_outcomes`]. Only a failed step that should bind a variable
    /// does, because the steps after it could not run.
    pub fn run(
        &self,
        client: &Peer,
        work: &Path,
        stores: &Stores,
    ) -> Result<ScenarioRun, ScenarioError> {
        let work = work.canonicalize().map_err(|source| ScenarioError::Io {
            scenario: self.name,
            action: "resolving",
            path: work.to_path_buf(),
            source,
        })?;
        if self.needs_source && stores.source.is_none() {
            return Err(ScenarioError::MissingStore {
                scenario: self.name,
                role: StoreRole::Source,
            });
        }
        let inputs = self.write_inputs(&work)?;
        let placeholders = stores.placeholders(&work);
        let normalize = |bytes: &[u8]| -> String {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            for (actual, placeholder) in &placeholders {
                if !actual.is_empty() {
                    text = text.replace(actual.as_str(), placeholder);
                }
            }
            text
        };
        let mut vars: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut records = Vec::new();
        for (index, step) in self.steps(client).into_iter().enumerate() {
            let store = stores.get(step.store).ok_or(ScenarioError::MissingStore {
                scenario: self.name,
                role: step.store,
            })?;
            let mut args = Vec::new();
            let mut argv = vec![step.program.to_owned()];
            for arg in &step.args {
                let (actual, shown) = if let Some(var) = arg.strip_prefix('$') {
                    let value = vars
                        .get(var)
                        .ok_or(ScenarioError::UnknownVariable {
                            scenario: self.name,
                            step: index,
                            var: arg,
                        })?
                        .clone();
                    (value.clone(), value)
                } else if *arg == STORE || *arg == SOURCE_STORE {
                    let role = if *arg == STORE {
                        StoreRole::Main
                    } else {
                        StoreRole::Source
                    };
                    let target = stores.get(role).ok_or(ScenarioError::MissingStore {
                        scenario: self.name,
                        role,
                    })?;
                    (target.uri.clone(), (*arg).to_owned())
                } else {
                    ((*arg).to_owned(), (*arg).to_owned())
                };
                args.push(actual);
                argv.push(shown);
            }

            let mut command = client.command(step.program);
            command.args(&args).current_dir(&work).remote(store.uri());
            for access in [Some(&stores.main), stores.source.as_ref()]
                .into_iter()
                .flatten()
            {
                for dir in access.dirs() {
                    command.bind_dir(dir);
                }
            }
            if let Some(file) = step.stdin_file {
                let path = work.join(file);
                let input = File::open(&path).map_err(|source| ScenarioError::Io {
                    scenario: self.name,
                    action: "opening",
                    path: path.clone(),
                    source,
                })?;
                command.stdin(input);
            }
            if let Some(file) = step.stdout_file {
                let path = work.join(file);
                let output = File::create(&path).map_err(|source| ScenarioError::Io {
                    scenario: self.name,
                    action: "creating",
                    path: path.clone(),
                    source,
                })?;
                command.stdout(output);
            }
            let output = command.output().map_err(|source| ScenarioError::Harness {
                scenario: self.name,
                step: index,
                source,
            })?;
            let stdout_file = match step.stdout_file {
                None => None,
                Some(file) => {
                    let path = work.join(file);
                    let bytes = fs::read(&path).map_err(|source| ScenarioError::Io {
                        scenario: self.name,
                        action: "reading",
                        path: path.clone(),
                        source,
                    })?;
                    Some(FileDigest {
                        path: file.to_owned(),
                        bytes: bytes.len() as u64,
                        sha256: sha256_hex(&bytes),
                    })
                }
            };
            let record = StepRecord {
                argv,
                store: step.store,
                stdin_file: step.stdin_file.map(str::to_owned),
                stdout: normalize(&output.stdout),
                stdout_file,
                stderr: normalize(&output.stderr),
                exit_code: output.status.code(),
                expect: step.expect,
            };
            if let Some(var) = step.binds {
                let value = String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                if !output.status.success() || value.is_empty() {
                    return Err(ScenarioError::NoValue {
                        scenario: self.name,
                        step: index,
                        argv: record.command_line(),
                        var,
                        status: describe_status(output.status),
                        stderr: record.stderr,
                    });
                }
                vars.insert(var, value);
            }
            records.push(record);
        }
        Ok(ScenarioRun {
            scenario: self.name.to_owned(),
            client_nix_version: client.nix_version().to_owned(),
            inputs,
            steps: records,
        })
    }
}

pub(super) fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}
