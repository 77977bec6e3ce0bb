//! Reading PyTorch weights: converts the ImageNet-pretrained EfficientNet-Lite0 state dict in
//! `../shared/weights` to safetensors in a temporary folder and loads it into a network.
//! (Users convert their own files with `anomalymatch weights convert IN.pth OUT.safetensors`.)
//!
//! `cargo run --release --example convert_weights`

use anomalymatch::core::{Check, Label};
use anomalymatch::models::weights::convert_to_safetensors;
use anomalymatch::models::{EfficientNet, EfficientNetConfig, Variant, load_pretrained};
use candle_core::Device;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pth = Path::new("../shared/weights/efficientnet-lite0-57934424.pth");
    if !pth.is_file() {
        println!("skipping: {} not found", pth.display());
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let safetensors = dir.path().join("lite0.safetensors");
    let n = convert_to_safetensors(pth, &safetensors)?;
    println!("{}: {n} tensors written", safetensors.display());
    let mut config = EfficientNetConfig::new(Variant::Lite0);
    config.num_classes = Label::CLASSES;
    let network: EfficientNet = config.check()?.build(&Device::Cpu)?;
    let report = load_pretrained(&network, &safetensors)?;
    println!(
        "{} variables loaded into Lite0; ImageNet's 1,000-class head replaced: {}",
        report.loaded, report.head_reset
    );
    Ok(())
}
