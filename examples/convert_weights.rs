//! Converts a PyTorch EfficientNet state dict (`.pth`, including the legacy pre-1.6 layout)
//! into safetensors with the same tensor names.
//!
//! `cargo run --release --example convert_weights -- IN.pth OUT.safetensors`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: convert_weights IN.pth OUT.safetensors");
        return ExitCode::from(2);
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    match anomalymatch_models::weights::convert_to_safetensors(&input, &output) {
        Ok(n) => {
            println!("{}: {n} tensors written", output.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
