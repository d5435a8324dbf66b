//! Downloads into the project's cache: streamed with a progress bar, checksummed, written under a
//! temporary name and renamed, so that an interrupted or corrupt download never looks finished.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::DataError;
use crate::progress::{Progress, Unit};

/// Environment variable that moves the cache.
pub const CACHE_ENV: &str = "CONVKIT_CACHE";

/// The cache directory: `$CONVKIT_CACHE`, else `$XDG_CACHE_HOME/convkit`, else `~/.cache/convkit`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("convkit")
}

/// An expected digest of a file, as lowercase hex.
#[derive(Debug, Clone, Copy)]
pub enum Checksum<'a> {
    Md5(&'a str),
    Sha256(&'a str),
}

enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Checksum<'_> {
    fn hasher(&self) -> Hasher {
        match self {
            Checksum::Md5(_) => Hasher::Md5(Md5::new()),
            Checksum::Sha256(_) => Hasher::Sha256(Sha256::new()),
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Md5(hex) | Checksum::Sha256(hex) => hex,
        }
    }
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        let digest: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(DataError::io(path))?;
    let mut hasher = Hasher::Sha256(Sha256::new());
    copy_hashing(&mut file, &mut std::io::sink(), Some(&mut hasher), None)
        .map_err(DataError::io(path))?;
    Ok(hasher.hex())
}

/// The SHA-256 of `bytes`, as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    let mut hasher = Hasher::Sha256(Sha256::new());
    hasher.update(bytes);
    hasher.hex()
}

fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
    mut hasher: Option<&mut Hasher>,
    bar: Option<&Progress>,
) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(total);
        }
        if let Some(hasher) = hasher.as_deref_mut() {
            hasher.update(&buffer[..n]);
        }
        to.write_all(&buffer[..n])?;
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
}

/// A sibling of `path` to write to before renaming onto it.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{PARTIAL}{}", std::process::id()))
}

const PARTIAL: &str = ".partial-";

/// The process that is writing the [`temporary_sibling`] `path`, if it is one.
fn temporary_owner(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let (_, pid) = name.strip_prefix('.')?.rsplit_once(PARTIAL)?;
    pid.parse().ok()
}

/// Whether process `pid` is running. Where the system does not say (no `/proc`), every process is
/// taken to be, so that nothing in use is removed.
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Remove the temporary siblings (files or folders) in `dir` whose process has ended: what a
/// killed download, unpack or cache write left behind. Those of running processes stay.
pub fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if temporary_owner(&path).is_some_and(|pid| !process_alive(pid)) {
            // Another process may be sweeping too: what is already gone is fine.
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Whether `path` is a [`temporary_sibling`], which a killed process may have left behind.
pub fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with('.') && n.contains(PARTIAL))
}

/// Download `url` to `dest` unless it is already there, checking `checksum` if there is one.
/// `fix` tells the user what to do when the network fails (it ends the error message).
pub fn download(
    url: &str,
    dest: &Path,
    checksum: Option<Checksum>,
    fix: &str,
) -> Result<(), DataError> {
    if dest.is_file() {
        return Ok(());
    }
    let fail = |problem: String| DataError::Download {
        url: url.to_string(),
        problem,
        fix: fix.to_string(),
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(DataError::write(parent))?;
        sweep_stale(parent);
    }
    // The system's certificate store, so that machines behind a proxy with its own authority
    // (common in companies) download as their browsers do.
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bar = Progress::new(
        format!("downloading {}", url.rsplit('/').next().unwrap_or(url)),
        length.unwrap_or(0),
        Unit::Bytes,
    );
    let partial = temporary_sibling(dest);
    let result = (|| {
        let mut file = std::fs::File::create(&partial).map_err(DataError::write(&partial))?;
        let mut hasher = checksum.map(|c| (c, c.hasher()));
        let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
        let written = copy_hashing(
            &mut body,
            &mut file,
            hasher.as_mut().map(|(_, h)| h),
            Some(&bar),
        )
        .map_err(|e| fail(e.to_string()))?;
        if let Some(expected) = length
            && written != expected
        {
            return Err(fail(format!("got {written} of {expected} bytes")));
        }
        file.sync_all().map_err(DataError::write(&partial))?;
        if let Some((checksum, hasher)) = hasher {
            let actual = hasher.hex();
            if actual != checksum.expected() {
                return Err(DataError::Checksum {
                    url: url.to_string(),
                    expected: checksum.expected().to_string(),
                    actual,
                });
            }
        }
        std::fs::rename(&partial, dest).map_err(DataError::write(dest))
    })();
    bar.finish();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Unpack the `.tar.gz` at `archive` into the directory `dest` (unless it exists): unpacked into a
/// temporary directory first, then renamed, so a half-unpacked archive is never used.
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), DataError> {
    if dest.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        sweep_stale(parent);
    }
    let partial = temporary_sibling(dest);
    let _ = std::fs::remove_dir_all(&partial);
    let result = (|| {
        std::fs::create_dir_all(&partial).map_err(DataError::write(&partial))?;
        let file = std::fs::File::open(archive).map_err(DataError::io(archive))?;
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(&partial)
            .map_err(|e| DataError::Corrupt {
                path: archive.to_path_buf(),
                problem: format!(
                    "cannot unpack: {e}; the archive is truncated or corrupt, fetch it again"
                ),
            })?;
        match std::fs::rename(&partial, dest) {
            // Another process unpacked the same archive first: use its copy.
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&partial);
                Ok(())
            }
            renamed => renamed.map_err(DataError::write(dest)),
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

/// The bytes of the first member of the `.tar.gz` at `archive` whose path ends with `suffix`.
pub fn archive_member(archive: &Path, suffix: &str) -> Result<Vec<u8>, DataError> {
    let corrupt = |problem: String| DataError::Corrupt {
        path: archive.to_path_buf(),
        problem,
    };
    let file = std::fs::File::open(archive).map_err(DataError::io(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let matches = entry
            .path()
            .map(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or(false);
        if matches {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| corrupt(e.to_string()))?;
            return Ok(bytes);
        }
    }
    Err(corrupt(format!("has no member ending in {suffix}")))
}

/// Write `bytes` to `dest` through a temporary sibling and a rename.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), DataError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(DataError::write(parent))?;
    }
    let partial = temporary_sibling(dest);
    let result = (|| {
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map_err(DataError::write(dest))
}
