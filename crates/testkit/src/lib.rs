//! Support for the workspace's tests, linked only into them (every crate takes it as a
//! dev-dependency): scratch directories, a loopback HTTP server that plays a download host (a
//! good file, a cut-off one, an error status), the files of `../shared`, a small fuzzer,
//! generated datasets ([`synthetic`]) and PyTorch's side of an export ([`torch`]).
//!
//! Not here: anything a user's build links.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use rng::Rng;

pub mod synthetic;
pub mod torch;

/// A fresh, empty directory under the system's temporary directory, removed when the test that
/// made it passes (kept after a failure, to look at).
pub struct ScratchDir(PathBuf);

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A new [`ScratchDir`] for the test `name`.
pub fn scratch_dir(name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("convkit-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory is writable");
    ScratchDir(dir)
}

/// Serve `body` with `status` on 127.0.0.1 for up to `requests` requests, announcing
/// `claimed_length` bytes (more than `body` holds plays a connection cut mid-download).
/// Returns the URL of `file_name` on that server.
pub fn serve(
    status: u16,
    body: Vec<u8>,
    claimed_length: usize,
    requests: usize,
    file_name: &str,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback port");
    let address = listener.local_addr().expect("bound address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {claimed_length}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{address}/{file_name}")
}

/// A file from `../shared` beside the checkout (developer and CI machines only), or `None` after
/// saying that the calling test skips because it is absent.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is absent (only developer and CI machines have ../shared)",
            path.display()
        );
        None
    }
}

/// Feed `check` mutated copies of `seeds` (bit flips, odd values, inserted, deleted, repeated and
/// spliced bytes, cut ends): `CONVKIT_FUZZ_ITERATIONS` of them, 300 unless set. An input that
/// makes `check` panic or run for over `SLOW` is written to the temporary directory and the test
/// fails naming that file. `name` seeds the mutations, so a run is reproducible.
pub fn fuzz(name: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    const SLOW: std::time::Duration = std::time::Duration::from_secs(20);
    let iterations = std::env::var("CONVKIT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let mut rng = Rng::new(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    for i in 0..iterations {
        let input = mutate(seeds, &mut rng);
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        let problem = match outcome {
            Err(_) => "panicked",
            Ok(()) if started.elapsed() > SLOW => "ran too long",
            Ok(()) => continue,
        };
        let saved = std::env::temp_dir().join(format!("convkit-fuzz-{name}-{i}.bin"));
        std::fs::write(&saved, &input).expect("temporary directory is writable");
        panic!(
            "fuzz {name}: input {i} {problem}; it is saved in {}",
            saved.display()
        );
    }
}

const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

fn mutate(seeds: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        let span = 1 + rng.below(64);
        match rng.below(8) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 if at < bytes.len() => bytes[at] = INTERESTING[rng.below(5)] as u8,
            2 if at + 4 <= bytes.len() => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let word = if rng.below(2) == 0 {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                bytes[at..at + 4].copy_from_slice(&word);
            }
            3 => {
                let noise: Vec<u8> = (0..span).map(|_| rng.next_u64() as u8).collect();
                bytes.splice(at..at, noise);
            }
            4 => {
                bytes.drain(at..(at + span).min(bytes.len()));
            }
            5 => {
                let copy = bytes[at..(at + span).min(bytes.len())].to_vec();
                bytes.splice(at..at, copy);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}
