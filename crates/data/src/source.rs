//! Where a dataset comes from: a local copy in either layout (a folder, or a `.tar.gz` of one), or
//! CIFAR-10's official archive downloaded once into the cache.

use std::path::{Path, PathBuf};

use crate::fetch::{self, Checksum};
use crate::{DataError, Dataset, cifar, folder};

pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// What to load and how.
#[derive(Debug, Clone)]
pub struct Source {
    /// A local copy: CIFAR-10 binary batches, an image-folder tree, or a `.tar.gz` of either.
    pub dir: Option<PathBuf>,
    /// Where to download CIFAR-10 from when there is no local copy, and its MD5.
    pub url: String,
    pub md5: String,
    pub cache: PathBuf,
    /// Side images from folders are resized to.
    pub image_size: usize,
    pub skip_broken: bool,
}

fn is_archive(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// The folder a local archive unpacks to in the cache, named by the archive's name and the
/// SHA-256 of its contents, so that an archive rebuilt with other contents (even of the same name
/// and size) never reuses another's.
fn unpacked_dir(cache: &Path, archive: &Path) -> Result<PathBuf, DataError> {
    let sha256 = fetch::sha256_file(archive)?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(cache
        .join("unpacked")
        .join(format!("{name}-{}", &sha256[..16])))
}

/// Find a dataset in `dir` or one level below it (archives usually wrap their content).
fn detect(dir: &Path) -> Option<PathBuf> {
    let fits = |d: &Path| cifar::is_cifar_dir(d) || folder::is_folder_dataset(d);
    if fits(dir) {
        return Some(dir.to_path_buf());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    children.into_iter().find(|d| fits(d))
}

fn load_dir(dir: &Path, source: &Source) -> Result<Dataset, DataError> {
    let Some(root) = detect(dir) else {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            problem: "holds neither CIFAR-10 binary batches (data_batch_1.bin …) nor a train/<class>/ image folder".into(),
        });
    };
    if cifar::is_cifar_dir(&root) {
        if source.image_size != cifar::SIDE {
            return Err(DataError::Layout {
                path: root,
                problem: format!(
                    "CIFAR-10 binary images are {0}x{0}, but data.image_size is {1}; set data.image_size = {0}",
                    cifar::SIDE,
                    source.image_size
                ),
            });
        }
        cifar::load(&root)
    } else {
        folder::load(&root, source.image_size, source.skip_broken)
    }
}

/// Load the dataset `source` describes, downloading CIFAR-10 if there is no local copy.
pub fn load(source: &Source) -> Result<Dataset, DataError> {
    if let Some(dir) = &source.dir {
        if !dir.exists() {
            return Err(DataError::Layout {
                path: dir.clone(),
                problem: "does not exist; set data.dir to a CIFAR-10 binary folder, an image folder tree or a .tar.gz of one".into(),
            });
        }
        if dir.is_file() && is_archive(dir) {
            let unpacked = unpacked_dir(&source.cache, dir)?;
            fetch::unpack(dir, &unpacked)?;
            return load_dir(&unpacked, source);
        }
        return load_dir(dir, source);
    }
    let archive = source.cache.join("cifar-10-binary.tar.gz");
    let fix = format!(
        "without network access, download {} elsewhere and run with --set data.dir=PATH (the archive or its unpacked folder)",
        source.url
    );
    fetch::download(
        &source.url,
        &archive,
        Some(Checksum::Md5(&source.md5)),
        &fix,
    )?;
    let unpacked = source.cache.join("cifar-10-binary");
    fetch::unpack(&archive, &unpacked)?;
    load_dir(&unpacked, source)
}
