//! Artifacts as Flux reads them: a tar.gz holding the data at `destinationPath`, written
//! deterministically (zero mtime, uid and gid, no owner names, fixed modes, a gzip header
//! without time or name) so the same data always makes the same bytes; `digest` is the sha256
//! of those bytes (what Flux's fetcher verifies), `revision` the sha256 of the data.

use std::io::Write as _;

use sha2::{Digest as _, Sha256};

/// A packaged artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    pub bytes: Vec<u8>,
    /// `sha256:<hex of the tar.gz>`.
    pub digest: String,
    /// `latest@sha256:<hex of the data>`.
    pub revision: String,
    /// `<hex of the data>.tar.gz`.
    pub file: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The path's parts, when it is relative and stays inside the archive.
pub fn destination(path: &str) -> Result<Vec<&str>, String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if path.starts_with('/') || parts.is_empty() || parts.contains(&"..") || path.contains('\0') {
        return Err(format!(
            "destinationPath {path:?} must be a relative path inside the artifact"
        ));
    }
    Ok(parts)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Packs `data` at `path` (its parent directories as entries first).
pub fn package(data: &[u8], path: &str) -> Result<Packaged, String> {
    let parts = destination(path)?;
    let gz = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 4 + 512),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let io = |e: std::io::Error| format!("packing the artifact: {e}");
    for depth in 1..parts.len() {
        let mut h = header(tar::EntryType::Directory, 0o750, 0);
        tar.append_data(
            &mut h,
            format!("{}/", parts[..depth].join("/")),
            std::io::empty(),
        )
        .map_err(io)?;
    }
    let mut h = header(tar::EntryType::Regular, 0o600, data.len() as u64);
    tar.append_data(&mut h, parts.join("/"), data).map_err(io)?;
    let mut gz = tar.into_inner().map_err(io)?;
    gz.flush().map_err(io)?;
    let bytes = gz.finish().map_err(io)?;
    let content = hex(&Sha256::digest(data));
    Ok(Packaged {
        digest: format!("sha256:{}", hex(&Sha256::digest(&bytes))),
        revision: format!("latest@sha256:{content}"),
        file: format!("{content}.tar.gz"),
        bytes,
    })
}

/// Where a source's artifacts are kept: `externalsource/<namespace>/<name>/`.
pub fn directory(namespace: &str, name: &str) -> String {
    format!("externalsource/{namespace}/{name}/")
}

/// Which stored artifacts garbage collection removes: all but the current one and the newest
/// others, `keep` in all. `stored` is (key, last modified).
pub fn garbage<T: Ord + Copy>(stored: &[(String, T)], current: &str, keep: usize) -> Vec<String> {
    let mut others: Vec<&(String, T)> = stored.iter().filter(|(k, _)| k != current).collect();
    others.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let kept_others = keep.saturating_sub(usize::from(stored.iter().any(|(k, _)| k == current)));
    others
        .into_iter()
        .skip(kept_others)
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn unpack(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn the_same_data_makes_the_same_bytes() {
        let a = package(b"{\"a\":1}", "config/app.json").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = package(b"{\"a\":1}", "config/app.json").unwrap();
        assert_eq!(a, b, "no clock in the archive");
        assert_ne!(
            a.digest,
            package(b"{\"a\":2}", "config/app.json").unwrap().digest
        );
        assert_ne!(
            a.digest,
            package(b"{\"a\":1}", "other.json").unwrap().digest
        );
        // The gzip header's mtime (bytes 4..8) is zero, and no name is stored (flag 0).
        assert_eq!(&a.bytes[3..8], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn digests_are_of_the_tarball_and_revisions_of_the_data() {
        let p = package(b"hello", "data").unwrap();
        assert_eq!(
            p.digest,
            format!("sha256:{}", hex(&Sha256::digest(&p.bytes)))
        );
        // sha256("hello")
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(p.revision, format!("latest@sha256:{hello}"));
        assert_eq!(p.file, format!("{hello}.tar.gz"));
    }

    #[test]
    fn entries_carry_no_owner_or_time() {
        let p = package(b"x", "a/b/c.txt").unwrap();
        let entries = unpack(&p.bytes);
        let listed: Vec<_> = entries
            .iter()
            .map(|e| (e.0.as_str(), e.1, e.2, e.3))
            .collect();
        assert_eq!(
            listed,
            [
                ("a/", tar::EntryType::Directory, 0o750, 0),
                ("a/b/", tar::EntryType::Directory, 0o750, 0),
                ("a/b/c.txt", tar::EntryType::Regular, 0o600, 0),
            ]
        );
        assert_eq!(entries[2].4, b"x");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&p.bytes[..]));
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert!(h.username().unwrap().unwrap_or_default().is_empty());
        }
    }

    #[test]
    fn paths_stay_inside() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "", "/", "a\0b"] {
            assert!(package(b"x", bad).is_err(), "{bad:?}");
        }
        assert_eq!(destination("./a//b/").unwrap(), ["a", "b"]);
    }

    #[test]
    fn garbage_collection_keeps_the_current_and_the_newest() {
        let stored: Vec<(String, u32)> = vec![
            ("a".into(), 1),
            ("b".into(), 2),
            ("c".into(), 3),
            ("d".into(), 4),
        ];
        assert_eq!(garbage(&stored, "d", 2), ["b", "a"]);
        // The current one is kept even when it is not the newest.
        assert_eq!(garbage(&stored, "a", 2), ["c", "b"]);
        assert_eq!(garbage(&stored, "d", 1), ["c", "b", "a"]);
        assert!(garbage(&stored, "d", 10).is_empty());
        // Not stored yet: the newest `keep` others stay.
        assert_eq!(garbage(&stored, "z", 2), ["b", "a"]);
    }
}
