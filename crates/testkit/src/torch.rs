//! PyTorch beside Burn: running `scripts/convkit_torch.py` on an exported model, when a Python
//! with torch and safetensors is there.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python that imports torch and safetensors: `CONVKIT_PYTHON`, else `python3`; `None`, with
/// the reason printed, without them (the test then skips).
pub fn python() -> Option<String> {
    let python = std::env::var("CONVKIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipped: {python} cannot import torch and safetensors (pip install torch safetensors, or set CONVKIT_PYTHON to a Python that can)"
        );
    }
    found.then_some(python)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/convkit_torch.py")
}

/// The logits PyTorch computes with the module of `run_dir`'s `model.json` and the weights in
/// `safetensors`, for the already normalized `input` (`[n, 3, side, side]`, row-major); files go
/// into `scratch`.
pub fn logits(
    python: &str,
    run_dir: &Path,
    safetensors: &Path,
    input: &[f32],
    scratch: &Path,
) -> Vec<f32> {
    let (input_file, output_file) = (scratch.join("input.f32"), scratch.join("logits.f32"));
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_file, bytes).expect("write the input");
    let output = Command::new(python)
        .arg(script())
        .arg(run_dir)
        .arg(safetensors)
        .arg("--input")
        .arg(&input_file)
        .arg("--output")
        .arg(&output_file)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(&output_file)
        .expect("the logits")
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}
