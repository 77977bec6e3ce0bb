//! Exponential moving average of a model's weights: the model the original scores with.

use crate::classifier::{NamedVar, VarRole};
use crate::error::{Error, Result};

/// Moves every trainable variable of `ema` towards `model` (`ema = m * ema + (1 - m) * model`)
/// and copies buffers (batch-norm running statistics) outright, as FixMatch does.
///
/// Both lists must come from models of the same architecture (same names in the same order).
pub fn ema_update(ema: &[NamedVar], model: &[NamedVar], momentum: f64) -> Result<()> {
    if ema.len() != model.len() {
        return Err(Error::Shape(format!(
            "EMA has {} variables, model {}",
            ema.len(),
            model.len()
        )));
    }
    for (e, m) in ema.iter().zip(model) {
        if e.name != m.name {
            return Err(Error::Shape(format!(
                "EMA variable {} does not match model variable {}",
                e.name, m.name
            )));
        }
        let mt = m.var.as_tensor();
        let next = match e.role {
            VarRole::Buffer => mt.clone(),
            _ => ((e.var.as_tensor() * momentum)? + (mt * (1.0 - momentum))?)?,
        };
        e.var.set(&next.detach())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn nv(name: &str, v: f32, role: VarRole) -> NamedVar {
        NamedVar {
            name: name.into(),
            var: Var::new(&[v], &Device::Cpu).unwrap(),
            role,
        }
    }

    #[test]
    fn averages_weights_and_copies_buffers() {
        let ema = [
            nv("w", 0.0, VarRole::Weight),
            nv("rm", 0.0, VarRole::Buffer),
        ];
        let model = [
            nv("w", 1.0, VarRole::Weight),
            nv("rm", 5.0, VarRole::Buffer),
        ];
        ema_update(&ema, &model, 0.99).unwrap();
        let w = ema[0].var.as_tensor().to_vec1::<f32>().unwrap()[0];
        let rm = ema[1].var.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((w - 0.01).abs() < 1e-7);
        assert_eq!(rm, 5.0);
        assert!(ema_update(&ema, &model[..1], 0.99).is_err());
    }
}
