//! The spine as separate processes the chaos run can SIGKILL: sources-api and the listener are
//! each this binary's `keel up --services …`; the Kafka broker is started by the caller under
//! a loop that starts it again when it dies, so killing it is a broker restart.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// Which part of the spine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    SourcesApi,
    Listener,
    Broker,
    /// Not a process: a member joins the listener's group and leaves again.
    Rebalance,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Self::SourcesApi => "sources-api",
            Self::Listener => "listener",
            Self::Broker => "broker",
            Self::Rebalance => "rebalance",
        }
    }
}

/// What both service processes are started with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub kafka_brokers: String,
    pub encryption_key: String,
    /// The PSK the workload uses.
    pub client_psk: String,
    /// The PSK the listener writes statuses with.
    pub listener_psk: String,
    pub sources_port: u16,
    pub listener_port: u16,
    /// Where each process's output is appended (one file per part, across restarts).
    pub log_dir: PathBuf,
}

/// One service process, started again after each kill.
pub struct Service {
    part: Part,
    child: Option<Child>,
    pub kills: u32,
    /// Exits nobody asked for (a crash, or a failed start), each followed by a restart.
    pub unexpected_exits: u32,
}

impl Service {
    pub fn new(part: Part) -> Self {
        Self {
            part,
            child: None,
            kills: 0,
            unexpected_exits: 0,
        }
    }

    pub fn part(&self) -> Part {
        self.part
    }

    pub fn start(&mut self, s: &Settings) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating the keel binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("up")
            .env("DATABASE_URL", &s.database_url)
            .env("KAFKA_BROKERS", &s.kafka_brokers)
            .env("ENCRYPTION_KEY", &s.encryption_key)
            .env("KEEL_DATA_DIR", &s.log_dir)
            .env(
                "LOG_LEVEL",
                std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned()),
            )
            .env_remove("METRICS_PORT")
            .env_remove("SOURCES_API_URL")
            .kill_on_drop(true)
            .stdin(Stdio::null());
        match self.part {
            Part::SourcesApi => {
                cmd.args(["--services", "sources-api"])
                    .env("PORT", s.sources_port.to_string())
                    .env(
                        "SOURCES_PSKS",
                        format!("{},{}", s.client_psk, s.listener_psk),
                    );
            }
            Part::Listener => {
                cmd.args(["--services", "listener"])
                    .env("LISTENER_PORT", s.listener_port.to_string())
                    .env(
                        "SOURCES_API_URL",
                        format!("http://127.0.0.1:{}", s.sources_port),
                    )
                    .env("SOURCES_PSK", &s.listener_psk);
            }
            Part::Broker | Part::Rebalance => bail!("{} is not a service", self.part.name()),
        }
        let log = log_file(&s.log_dir, self.part)?;
        cmd.stdout(log.try_clone()?).stderr(log);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", self.part.name()))?,
        );
        Ok(())
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
            self.kills += 1;
        }
        Ok(())
    }

    /// Starts the process again if it exited on its own; true if it had.
    pub fn revive_if_exited(&mut self, s: &Settings) -> anyhow::Result<bool> {
        let exited = match &mut self.child {
            Some(child) => child.try_wait()?.is_some(),
            None => false,
        };
        if exited {
            self.unexpected_exits += 1;
            tracing::warn!(
                part = self.part.name(),
                "exited on its own; starting it again"
            );
            self.start(s)?;
        }
        Ok(exited)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

fn log_file(dir: &Path, part: Part) -> anyhow::Result<File> {
    let path = dir.join(format!("{}.log", part.name()));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The broker: its supervisor writes the running broker's pid to `pid_file` and starts it again
/// when it dies.
pub struct Broker {
    pub pid_file: PathBuf,
    pub address: String,
    pub kills: u32,
}

impl Broker {
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let pid = tokio::fs::read_to_string(&self.pid_file)
            .await
            .with_context(|| format!("reading {}", self.pid_file.display()))?;
        let pid = pid.trim();
        anyhow::ensure!(
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
            "{} does not hold a pid",
            self.pid_file.display()
        );
        let status = Command::new("kill").args(["-KILL", pid]).status().await?;
        anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
        self.kills += 1;
        Ok(())
    }

    /// Whether the broker accepts connections again.
    pub async fn is_up(&self) -> bool {
        tokio::net::TcpStream::connect(&self.address).await.is_ok()
    }
}

/// Waits until `url` answers 2xx, up to `limit`.
pub async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{url} did not answer within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
