//! `anomalymatch train`: labelled plus unlabelled images to a checkpoint, starting fresh or
//! continuing an existing checkpoint (`--from`), which must have been trained on the same
//! pixels.

use crate::assemble::{self, say};
use crate::cli::{Common, DataFlags};
use crate::error::{AppError, Result};
use anomalymatch_core::fixmatch::TrainData;
use anomalymatch_core::{Label, UnlabelledPool};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Images, labels, size and iterations.
    #[command(flatten)]
    pub data: DataFlags,
    /// A checkpoint to continue from (its iteration count and optimiser state carry on).
    #[arg(long, value_name = "CHECKPOINT")]
    pub from: Option<PathBuf>,
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.data])?;
    let quiet = args.common.quiet;

    let (images, labels_path) = assemble::images_and_labels(&config)?;
    let labels_path = labels_path
        .ok_or_else(|| AppError::Usage("train needs labels: --labels FILE (data.labels)".into()))?;
    if let Some(from) = &args.from
        && !from.is_file()
    {
        return Err(AppError::Failed(format!(
            "{}: no such checkpoint",
            from.display()
        )));
    }
    let labels = assemble::read_labels(&labels_path)?;
    let out = &config.output.dir;
    std::fs::create_dir_all(out)
        .map_err(|e| AppError::Failed(format!("{}: {e}", out.display())))?;

    let loader = assemble::loader(&config)?;
    let spec = loader.spec();
    let model = assemble::model(&config, spec)?;
    let mut trainer = assemble::trainer(&config, model, spec, quiet)?;
    if let Some(from) = &args.from {
        trainer.resume(from)?;
        say(
            quiet,
            format!(
                "continuing {} from iteration {}",
                from.display(),
                trainer.iteration()
            ),
        );
    }
    let mut pool = UnlabelledPool::new(
        assemble::open_source(&config, &images)?,
        loader,
        config.data.n_to_load,
    )?;
    let labelled = assemble::labelled_set(&mut pool, &labels, quiet)?;
    let window = pool.next_window(&assemble::name_set(labelled.names()), !quiet)?;
    say(
        quiet,
        format!(
            "training on {} labelled ({} anomalies) and {} unlabelled images",
            labelled.len(),
            labelled.count(Label::Anomaly),
            window.names.len()
        ),
    );
    let t = Instant::now();
    let data = TrainData {
        labelled: labelled.images(),
        labels: labelled.labels(),
        unlabelled: &window.images,
    };
    trainer.fit(&data, config.train.iterations, &mut |_| {})?;
    let checkpoint = out.join("checkpoint.safetensors");
    trainer.save_checkpoint(&checkpoint)?;
    println!(
        "trained to iteration {} in {:.1} s; wrote {}",
        trainer.iteration(),
        t.elapsed().as_secs_f64(),
        checkpoint.display()
    );
    Ok(())
}
