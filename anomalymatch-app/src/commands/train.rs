//! `anomalymatch train`: labelled plus unlabelled images to a checkpoint, starting fresh or
//! continuing an existing checkpoint (`--from`), which must have been trained on the same
//! pixels.

use crate::assemble::{self, say};
use crate::cli::{Common, DataFlags};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::stdout::out;
use anomalymatch_core::atomic::write_bytes_atomic;
use anomalymatch_core::fixmatch::TrainData;
use anomalymatch_core::{Label, UnlabelledPool};
use clap::Args;
use std::ops::Range;
use std::path::{Path, PathBuf};
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
    let _lock = assemble::prepare_output(out, None, quiet)?;

    let loader = assemble::loader(&config)?;
    let spec = loader.spec();
    let model = assemble::model(&config, spec)?;
    let mut trainer = assemble::trainer(&config, model, spec, quiet)?;
    let run = Run::new(out, &config, &args.from, &labels_path, &images)?;
    let span = match run.resumable()? {
        Some(span) => {
            trainer.resume(&run.checkpoint())?;
            say(
                quiet,
                format!(
                    "resuming a stopped run at iteration {} of {}",
                    trainer.iteration(),
                    span.end
                ),
            );
            span
        }
        None => {
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
            let start = trainer.iteration();
            let span = start..start + config.train.iterations;
            run.begin(&span)?;
            span
        }
    };
    trainer.set_checkpoint_every(&run.checkpoint(), config.output.checkpoint_every);
    let mut pool = UnlabelledPool::new(
        assemble::open_source(&config, &images, true)?,
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
    trainer.fit_span(&data, span, &mut |_| {})?;
    let checkpoint = out.join("checkpoint.safetensors");
    trainer.save_checkpoint(&checkpoint)?;
    run.finish()?;
    out!(
        "trained to iteration {} in {:.1} s; wrote {}",
        trainer.iteration(),
        t.elapsed().as_secs_f64(),
        checkpoint.display()
    );
    Ok(())
}

/// The resumable state of a training run in `OUT/train-run/`: what it was started with, the
/// iterations it spans, and its latest periodic checkpoint. A rerun with the same settings
/// continues it; other settings start afresh.
struct Run {
    dir: PathBuf,
    identity: serde_json::Value,
}

impl Run {
    fn new(
        out: &Path,
        config: &Config,
        from: &Option<PathBuf>,
        labels: &Path,
        images: &Path,
    ) -> Result<Self> {
        let identity = serde_json::json!({
            "config": config, "from": from, "labels": labels, "images": images,
        });
        let dir = out.join("train-run");
        anomalymatch_core::atomic::remove_stale_temps(&dir)?;
        Ok(Run { dir, identity })
    }

    fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }

    fn record(&self) -> PathBuf {
        self.dir.join("run.json")
    }

    /// The span of a stopped run with the same settings and a checkpoint to resume from.
    fn resumable(&self) -> Result<Option<Range<usize>>> {
        let Ok(text) = std::fs::read(self.record()) else {
            return Ok(None);
        };
        let saved: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
        let span = |k: &str| saved.get(k).and_then(serde_json::Value::as_u64);
        match (saved.get("identity"), span("start"), span("end")) {
            (Some(id), Some(start), Some(end))
                if *id == self.identity && self.checkpoint().is_file() =>
            {
                Ok(Some(start as usize..end as usize))
            }
            _ => Ok(None),
        }
    }

    /// Starts a fresh run over `span`, replacing any other.
    fn begin(&self, span: &Range<usize>) -> Result<()> {
        let failed = |e: std::io::Error| AppError::Failed(format!("{}: {e}", self.dir.display()));
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(failed)?;
        }
        std::fs::create_dir_all(&self.dir).map_err(failed)?;
        let record = serde_json::json!({
            "identity": self.identity, "start": span.start, "end": span.end,
        });
        Ok(write_bytes_atomic(
            &self.record(),
            record.to_string().as_bytes(),
        )?)
    }

    /// Removes the run's state once its final checkpoint is written.
    fn finish(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| AppError::Failed(format!("{}: {e}", self.dir.display())))
    }
}
