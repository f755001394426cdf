//! Loading one report file: the object is streamed (never held whole), decompressed, parsed
//! and re-encoded on a blocking thread, and the rows are sent to PostgreSQL with `COPY` in
//! chunks as they are produced.

use std::io::Read;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use futures::TryStreamExt as _;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::domain::{
    convert,
    layout::{self, ReportType},
};

/// Rows are sent to PostgreSQL in chunks of about this many bytes.
const CHUNK: usize = 1 << 20;

/// How the report's bytes are packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packing {
    /// A CSV file, gzip-compressed when `gzip`.
    Csv { gzip: bool },
    /// The member of this name in a gzip-compressed tarball.
    TarMember(String),
}

/// What kind of file to expect: an AWS CUR, or any OpenShift report (recognised by its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Aws,
    Ocp,
}

/// Why a file did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is missing, damaged or not a report of this kind: failing again is certain
    /// until the file changes.
    #[error("{0}")]
    Bad(String),
    /// The object store or the database failed: worth retrying.
    #[error(transparent)]
    Storage(#[from] object_store::Error),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for LoadError {
    fn from(e: sqlx::Error) -> Self {
        // Data exceptions (class 22) and integrity violations (23) come from the file's values.
        match e.as_database_error().and_then(|d| d.code()) {
            Some(code) if code.starts_with("22") || code.starts_with("23") => Self::Bad(format!(
                "PostgreSQL refused a row: {}",
                e.as_database_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned())
            )),
            _ => Self::Database(e),
        }
    }
}

/// The outcome of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub report_type: ReportType,
    /// `None`: a report type that is kept but not processed.
    pub rows: Option<u64>,
}

enum Message {
    Begin(ReportType, Option<layout::Plan>),
    Chunk(Bytes),
    Failed(String),
}

/// Streams `stream` into `schema`'s table for the file's report type, inside the caller's
/// transaction. `fixed` are the values of the layout's fixed columns.
pub async fn copy_report(
    conn: &mut PgConnection,
    schema: &str,
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    packing: Packing,
    family: Family,
    fixed: Vec<String>,
) -> Result<Loaded, LoadError> {
    let (tx, mut rx) = mpsc::channel::<Message>(4);
    let reader = StreamReader::new(stream.map_err(std::io::Error::other));
    let bridge = SyncIoBridge::new(reader);
    let producer = tokio::task::spawn_blocking(move || {
        let result = unpack(bridge, &packing, family, &fixed, &tx);
        if let Err(message) = result {
            let _ = tx.blocking_send(Message::Failed(message));
        }
    });
    let loaded = consume(conn, schema, &mut rx).await;
    drop(rx);
    // The producer stops at its next send once the receiver is gone.
    let _ = producer.await;
    loaded
}

async fn consume(
    conn: &mut PgConnection,
    schema: &str,
    rx: &mut mpsc::Receiver<Message>,
) -> Result<Loaded, LoadError> {
    let (report_type, plan) = match rx.recv().await {
        Some(Message::Begin(t, plan)) => (t, plan),
        Some(Message::Failed(m)) => return Err(LoadError::Bad(m)),
        Some(Message::Chunk(_)) | None => {
            return Err(LoadError::Bad("the file ended before its header".into()));
        }
    };
    let (Some(plan), Some(layout)) = (plan, report_type.layout()) else {
        return Ok(Loaded {
            report_type,
            rows: None,
        });
    };
    let columns: Vec<&str> = layout
        .fixed
        .iter()
        .copied()
        .chain(plan.columns.iter().copied())
        .collect();
    let statement = format!(
        "COPY {}.{} ({}) FROM STDIN WITH (FORMAT csv)",
        keel_db::quote_ident(schema),
        layout.table,
        columns.join(", ")
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    loop {
        match rx.recv().await {
            Some(Message::Chunk(bytes)) => {
                if let Err(e) = copy.send(bytes).await {
                    return Err(e.into());
                }
            }
            Some(Message::Failed(m)) => {
                let _ = copy.abort(m.clone()).await;
                return Err(LoadError::Bad(m));
            }
            Some(Message::Begin(..)) => unreachable!("one header per file"),
            None => break,
        }
    }
    let rows = copy.finish().await?;
    Ok(Loaded {
        report_type,
        rows: Some(rows),
    })
}

/// On the blocking thread: opens the packing, then parses and re-encodes.
fn unpack(
    input: impl Read,
    packing: &Packing,
    family: Family,
    fixed: &[String],
    tx: &mpsc::Sender<Message>,
) -> Result<(), String> {
    match packing {
        Packing::Csv { gzip: true } => encode(MultiGzDecoder::new(input), family, fixed, tx),
        Packing::Csv { gzip: false } => encode(input, family, fixed, tx),
        Packing::TarMember(member) => {
            let mut archive = tar::Archive::new(MultiGzDecoder::new(input));
            let entries = archive
                .entries()
                .map_err(|e| format!("the payload is not a tar.gz: {e}"))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("the payload is damaged: {e}"))?;
                let name = entry
                    .path()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
                if name.as_deref() == Some(member.as_str()) {
                    return encode(entry, family, fixed, tx);
                }
            }
            Err(format!("the payload holds no file {member}"))
        }
    }
}

fn encode(
    input: impl Read,
    family: Family,
    fixed: &[String],
    tx: &mpsc::Sender<Message>,
) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad_csv(&e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let report_type = match family {
        Family::Aws => ReportType::AwsCur,
        Family::Ocp => {
            let normalized: Vec<String> =
                header.iter().map(|h| layout::normalize_header(h)).collect();
            layout::detect_ocp(&normalized)
        }
    };
    let Some(layout) = report_type.layout() else {
        let _ = tx.blocking_send(Message::Begin(report_type, None));
        return Ok(());
    };
    let plan = layout.plan(&header)?;
    if tx
        .blocking_send(Message::Begin(report_type, Some(plan.clone())))
        .is_err()
    {
        return Ok(());
    }
    let writer = || csv::Writer::from_writer(Vec::with_capacity(CHUNK + CHUNK / 4));
    let mut out = writer();
    let mut record = csv::ByteRecord::new();
    let mut scratch = String::new();
    let mut rows = 0u64;
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| bad_csv(&e))?
    {
        convert::write_row(&mut out, fixed, &plan, &record, &mut scratch)
            .map_err(|e| e.to_string())?;
        rows += 1;
        if rows.is_multiple_of(256) {
            out.flush().map_err(|e| e.to_string())?;
            if out.get_ref().len() >= CHUNK {
                let full = std::mem::replace(&mut out, writer());
                let chunk = Bytes::from(full.into_inner().map_err(|e| e.to_string())?);
                if tx.blocking_send(Message::Chunk(chunk)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    let rest = out.into_inner().map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        let _ = tx.blocking_send(Message::Chunk(Bytes::from(rest)));
    }
    Ok(())
}

fn bad_csv(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => format!("the file cannot be read: {io}"),
        _ => format!("the file is not valid CSV: {e}"),
    }
}
