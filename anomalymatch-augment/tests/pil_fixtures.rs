//! Each op against PIL's output on small hand-made 8x7 images (RGB, a narrow-range RGB image,
//! and one band), stored as levels in `fixtures/pil_ops.json` (made with Pillow 13 by the calls
//! FixMatch's RandAugment makes; fill 0).
//!
//! Ops that only move pixels or whose semantics are 8-bit must match PIL exactly; the blends
//! and AutoContrast must lie within the bounds documented in `ops::colour` (PIL truncates to
//! whole levels and rounds its intermediate grey images; we stay continuous).

use anomalymatch_augment::Op;
use anomalymatch_core::ImageStore;
use serde_json::Value;

fn op_named(name: &str) -> Op {
    Op::FIXMATCH
        .into_iter()
        .find(|op| format!("{op:?}") == name)
        .unwrap_or_else(|| panic!("unknown op {name}"))
}

/// Allowed `ours - PIL`, in levels, per op.
fn bounds(op: Op) -> (f32, f32) {
    match op {
        // PIL truncates v * factor and the stretched value: we are above by less than a level.
        Op::Brightness | Op::AutoContrast => (0.0, 1.0),
        // As above, plus PIL's rounded grey / mean / smoothed image (half a level).
        Op::Color | Op::Contrast | Op::Sharpness => (-0.5, 1.5),
        _ => (0.0, 0.0),
    }
}

#[test]
fn every_op_matches_pil() {
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/pil_ops.json")).expect("fixture is JSON");
    let (w, h) = (
        doc["width"].as_u64().unwrap() as usize,
        doc["height"].as_u64().unwrap() as usize,
    );
    let mut per_op: std::collections::BTreeMap<String, (usize, f32, f32)> = Default::default();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["op"].as_str().unwrap();
        let op = op_named(name);
        let magnitude = case["magnitude"].as_f64().unwrap() as f32;
        let input = &doc["inputs"][case["input"].as_str().unwrap()];
        let channels = input["channels"].as_u64().unwrap() as usize;
        let levels: Vec<u8> = input["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let want: Vec<f32> = case["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let batch = ImageStore::from_vec(levels, channels, h, w)
            .unwrap()
            .to_batch();
        let got = op.apply_to(magnitude, &batch).unwrap();
        let (lo, hi) = bounds(op);
        let entry = per_op.entry(name.to_string()).or_insert((0, 0.0, 0.0));
        entry.0 += 1;
        for (i, (g, p)) in got.as_slice().iter().zip(&want).enumerate() {
            let diff = g * 255.0 - p;
            entry.1 = entry.1.min(diff);
            entry.2 = entry.2.max(diff);
            assert!(
                diff >= lo - 1e-3 && diff <= hi + 1e-3,
                "{name}({magnitude}) on {}: value {i} is {} levels, PIL says {p}",
                case["input"],
                g * 255.0
            );
        }
    }
    // Every one of FixMatch's ops is covered.
    assert_eq!(per_op.len(), Op::FIXMATCH.len(), "{per_op:?}");
    eprintln!("cases, min and max (ours - PIL) in levels: {per_op:?}");
}
