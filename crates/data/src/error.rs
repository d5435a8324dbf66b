use std::path::PathBuf;

/// Bad input or a failed fetch; each message names the file or address and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Corrupt { path: PathBuf, problem: String },
    #[error(
        "cannot use image {path}: {problem} (remove or replace the file, or set data.skip_broken_images = true)"
    )]
    Image { path: PathBuf, problem: String },
    #[error("download of {url} failed: {problem}; {fix}")]
    Download {
        url: String,
        problem: String,
        fix: String,
    },
    #[error(
        "{url}: checksum mismatch (expected {expected}, got {actual}); the download is corrupt, run again or point at a good local copy"
    )]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {problem}")]
    Layout { path: PathBuf, problem: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |cause| DataError::Io { path, cause }
    }

    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |cause| DataError::Write { path, cause }
    }
}
