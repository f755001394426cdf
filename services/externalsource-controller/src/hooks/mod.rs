//! Running hooks: the whitelist is checked, then the command runs in process or in the
//! hook-executor sidecar (which checks the same whitelist again before it runs anything).
//! Running means: looked up only in the trusted directories (refused when it, or what a
//! symlink leads to, lies elsewhere), no shell, a cleared environment plus the hook's
//! variables, its input on stdin, its output from stdout, killed at its timeout. The
//! whitelist is read again when its file changes.

pub mod sidecar;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::io::AsyncWriteExt as _;

use crate::{
    crd::HookSpec,
    domain::{
        policy::{HookFailure, duration},
        whitelist::Whitelist,
    },
};

/// The largest output a hook may give.
pub const MAX_OUTPUT: usize = 256 * 1024 * 1024;

/// What a command that ran gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when a signal ended it.
    pub code: Option<i32>,
}

#[derive(Clone)]
pub struct Runner {
    whitelist: Arc<RwLock<Arc<Whitelist>>>,
    trusted: Vec<PathBuf>,
    /// `Some`: hooks run in the sidecar at this URL.
    sidecar: Option<(reqwest::Client, String)>,
}

impl Runner {
    pub fn new(whitelist: Whitelist, trusted: Vec<PathBuf>) -> Self {
        Self {
            whitelist: Arc::new(RwLock::new(Arc::new(whitelist))),
            trusted: trusted
                .iter()
                .filter_map(|d| d.canonicalize().ok())
                .collect(),
            sidecar: None,
        }
    }

    /// Runs hooks in the hook-executor at `endpoint` (`http://localhost:8081`).
    pub fn through_sidecar(mut self, endpoint: &str, client: reqwest::Client) -> Self {
        self.sidecar = Some((client, endpoint.trim_end_matches('/').to_owned()));
        self
    }

    /// Replaces the whitelist (a reload).
    pub fn set_whitelist(&self, w: Whitelist) {
        if let Ok(mut current) = self.whitelist.write() {
            *current = Arc::new(w);
        }
    }

    /// Reads `path` every `every` and takes it when it differs from what was last read
    /// (`read`: the bytes the current whitelist came from) and parses; a broken file is
    /// logged and the last good whitelist kept.
    pub fn watch(
        &self,
        path: PathBuf,
        read: Option<Vec<u8>>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = read;
            loop {
                tokio::time::sleep(every).await;
                let now = tokio::fs::read(&path).await.ok();
                if now == last {
                    continue;
                }
                match Whitelist::parse(&String::from_utf8_lossy(now.as_deref().unwrap_or_default()))
                {
                    Ok(w) => {
                        tracing::info!(path = %path.display(), "hook whitelist reloaded");
                        me.set_whitelist(w);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the hook whitelist does not parse; the last one stays")
                    }
                }
                last = now;
            }
        })
    }

    fn denied(hook: &HookSpec, reason: String) -> HookFailure {
        HookFailure::Denied {
            hook: hook.name.clone(),
            reason,
        }
    }

    /// The whitelist's verdict on `hook`.
    pub fn check(&self, hook: &HookSpec) -> Result<(), HookFailure> {
        let env: Vec<(String, String)> = hook
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        let whitelist = self.whitelist.read().map(|w| w.clone()).unwrap_or_default();
        whitelist
            .check(&hook.command, &hook.args, &env)
            .map_err(|d| Self::denied(hook, d.0))
    }

    /// The program to run: the command found in a trusted directory, itself (after any
    /// symlinks) inside one.
    fn resolve(&self, hook: &HookSpec) -> Result<PathBuf, HookFailure> {
        let within = |p: &Path| self.trusted.iter().any(|d| p.parent() == Some(d.as_path()));
        for dir in &self.trusted {
            let candidate = dir.join(&hook.command);
            if let Ok(real) = candidate.canonicalize() {
                if !within(&real) {
                    return Err(Self::denied(
                        hook,
                        format!(
                            "{} leads outside the trusted directories",
                            candidate.display()
                        ),
                    ));
                }
                return Ok(real);
            }
        }
        Err(Self::denied(
            hook,
            format!(
                "command {} is not installed in a trusted directory",
                hook.command
            ),
        ))
    }

    /// Runs the hook on `input`: its stdout, or why not.
    pub async fn run(&self, hook: &HookSpec, input: Vec<u8>) -> Result<Vec<u8>, HookFailure> {
        self.check(hook)?;
        let output = match &self.sidecar {
            Some((client, endpoint)) => sidecar::call(client, endpoint, hook, input).await?,
            None => self.execute(hook, input).await?,
        };
        if output.code != Some(0) {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .chars()
                .rev()
                .take(500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let status = output
                .code
                .map_or("a signal".to_owned(), |c| format!("status {c}"));
            return Err(HookFailure::Failed {
                hook: hook.name.clone(),
                reason: format!("exited with {status}: {}", tail.trim()),
            });
        }
        Ok(output.stdout)
    }

    /// Runs the (checked) hook here.
    pub async fn execute(&self, hook: &HookSpec, input: Vec<u8>) -> Result<Output, HookFailure> {
        self.check(hook)?;
        let program = self.resolve(hook)?;
        let timeout = duration(&hook.timeout).unwrap_or(Duration::from_secs(30));
        let failed = |reason: String| HookFailure::Failed {
            hook: hook.name.clone(),
            reason,
        };
        let path = std::env::join_paths(&self.trusted).unwrap_or_default();
        let mut child = tokio::process::Command::new(&program)
            .args(&hook.args)
            .env_clear()
            .env("PATH", path)
            .env("LANG", "C.UTF-8")
            .envs(hook.env.iter().map(|e| (&e.name, &e.value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Written while the output is read, so a hook that answers before it reads all its
        // input cannot block on a full pipe.
        let feeding = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        let outcome = tokio::time::timeout(timeout, child.wait_with_output()).await;
        feeding.abort();
        let output = match outcome {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(failed(format!("waiting for it: {e}"))),
            Err(_) => return Err(failed(format!("timed out after {}", hook.timeout))),
        };
        if output.stdout.len() > MAX_OUTPUT {
            return Err(failed(format!("its output is over {MAX_OUTPUT} bytes")));
        }
        Ok(Output {
            stdout: output.stdout,
            stderr: output.stderr,
            code: output.status.code(),
        })
    }
}
