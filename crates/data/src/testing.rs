//! Support for the workspace's tests: scratch directories and a loopback HTTP server that plays a
//! download host (a good file, a cut-off one, an error status).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

/// A fresh, empty directory under the system's temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convkit-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory is writable");
    dir
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
