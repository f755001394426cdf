//! Running hooks in process: the whitelist is checked, the command is looked up only in the
//! trusted directories (and refused when it, or what a symlink leads to, lies elsewhere), it
//! runs without a shell, with a cleared environment plus the hook's variables, its input on
//! stdin, its output from stdout, killed at its timeout. The whitelist is read again when its
//! file changes.

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
const MAX_OUTPUT: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct Runner {
    whitelist: Arc<RwLock<Arc<Whitelist>>>,
    trusted: Vec<PathBuf>,
}

impl Runner {
    pub fn new(whitelist: Whitelist, trusted: Vec<PathBuf>) -> Self {
        Self {
            whitelist: Arc::new(RwLock::new(Arc::new(whitelist))),
            trusted: trusted
                .iter()
                .filter_map(|d| d.canonicalize().ok())
                .collect(),
        }
    }

    /// Replaces the whitelist (a reload).
    pub fn set_whitelist(&self, w: Whitelist) {
        if let Ok(mut current) = self.whitelist.write() {
            *current = Arc::new(w);
        }
    }

    /// Reads `path` every `every` and takes it when it changed and parses; a broken file is
    /// logged and the last good whitelist kept.
    pub fn watch(&self, path: PathBuf, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = tokio::fs::read(&path).await.ok();
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

    pub async fn run(&self, hook: &HookSpec, input: Vec<u8>) -> Result<Vec<u8>, HookFailure> {
        let env: Vec<(String, String)> = hook
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        let whitelist = self.whitelist.read().map(|w| w.clone()).unwrap_or_default();
        whitelist
            .check(&hook.command, &hook.args, &env)
            .map_err(|d| Self::denied(hook, d.0))?;
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
            .envs(env)
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
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .chars()
                .rev()
                .take(500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(failed(format!(
                "exited with {}: {}",
                output.status,
                tail.trim()
            )));
        }
        if output.stdout.len() > MAX_OUTPUT {
            return Err(failed(format!("its output is over {MAX_OUTPUT} bytes")));
        }
        Ok(output.stdout)
    }
}
