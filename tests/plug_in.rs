#![allow(clippy::unwrap_used)]
//! A downstream crate plugs its own classifier, augmenter, query strategy, oracle and image
//! source into the library's traits, and the FixMatch trainer works with them.

use anomalymatch::core::classifier::{ModelSpec, NamedVar, VarRole};
use anomalymatch::core::fixmatch::{FixMatch, TrainData};
use anomalymatch::core::toy::toy_images;
use anomalymatch::core::{
    Answer, Augmenter, Candidate, ChannelMode, Check, Classifier, DataSpec, ImageBatch,
    ImagePayload, ImageSource, ImageStore, Label, Oracle, OracleOutcome, QueryInput, QueryStrategy,
    Result, ScoreOptions, Scorer, SourceImage, Stretch, TrainConfig, Views,
};
use candle_core::{DType, Device, Tensor, Var};
use rand::{RngExt, SeedableRng};

/// How the tests score: 64 images per pass, one view.
const SCORING: ScoreOptions = ScoreOptions {
    batch_size: 64,
    views: Views::Single,
    embeddings: false,
    progress: false,
};

/// The pixels of [`make_images`]: one band.
const SPEC: DataSpec = DataSpec {
    size: SIDE,
    channels: ChannelMode::Keep(1),
    stretch: Stretch::MinMax,
    crop: anomalymatch_core::Crop::WHOLE,
};

/// Logistic regression on two hand-made features (brightest pixel, mean pixel).
struct TinyClassifier {
    w: Var,
    b: Var,
    device: Device,
}

impl TinyClassifier {
    fn new() -> Self {
        let device = Device::Cpu;
        TinyClassifier {
            w: Var::from_tensor(&Tensor::new(&[[0.1f32, -0.1], [-0.1, 0.1]], &device).unwrap())
                .unwrap(),
            b: Var::zeros(2, DType::F32, &device).unwrap(),
            device,
        }
    }

    fn features(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let flat = images.flatten_from(1)?;
        Tensor::cat(&[flat.max_keepdim(1)?, flat.mean_keepdim(1)?], 1)
    }
}

impl Classifier for TinyClassifier {
    fn forward_t(&self, images: &Tensor, _train: bool) -> Result<Tensor> {
        let f = self.features(images)?;
        Ok(f.matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())?)
    }

    fn variables(&self) -> Vec<NamedVar> {
        vec![
            NamedVar {
                name: "w".into(),
                var: self.w.clone(),
                role: VarRole::Weight,
            },
            NamedVar {
                name: "b".into(),
                var: self.b.clone(),
                role: VarRole::NoDecay,
            },
        ]
    }

    fn spec(&self) -> ModelSpec {
        ModelSpec {
            architecture: "tiny".into(),
            in_channels: 1,
            num_classes: anomalymatch::core::Label::CLASSES,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.features(images)?))
    }

    fn duplicate(&self) -> Result<Self> {
        Ok(TinyClassifier {
            w: Var::from_tensor(&self.w.as_tensor().copy()?)?,
            b: Var::from_tensor(&self.b.as_tensor().copy()?)?,
            device: self.device.clone(),
        })
    }
}

/// Weak view: horizontal flip of every other image; strong view: plus additive noise.
struct FlipNoise;

impl Augmenter for FlipNoise {
    fn weak(&self, images: &ImageBatch, _seed: u64) -> Result<ImageBatch> {
        let mut out = images.clone();
        let w = out.width();
        for i in (0..out.len()).step_by(2) {
            for row in out.image_mut(i).chunks_mut(w) {
                row.reverse();
            }
        }
        Ok(out)
    }

    fn strong(&self, images: &ImageBatch, seed: u64) -> Result<ImageBatch> {
        let mut out = self.weak(images, seed)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for v in out.as_mut_slice() {
            *v = (*v + rng.random_range(-0.05..0.05f32)).clamp(0.0, 1.0);
        }
        Ok(out)
    }
}

/// Chooses the unlabelled items whose score is closest to 0.5.
struct ClosestToHalf;

impl QueryStrategy for ClosestToHalf {
    fn name(&self) -> &str {
        "closest-to-half"
    }

    fn select(&self, input: &QueryInput<'_>, k: usize, _seed: u64) -> Result<Vec<usize>> {
        input.validate()?;
        let mut c: Vec<usize> = input.candidates().collect();
        c.sort_by(|&a, &b| {
            (input.scores[a] - 0.5)
                .abs()
                .total_cmp(&(input.scores[b] - 0.5).abs())
        });
        c.truncate(k);
        Ok(c)
    }
}

/// Answers from ground truth, skipping every third candidate like a hurried expert.
struct Truth(Vec<Label>);

impl Oracle for Truth {
    fn label(
        &mut self,
        candidates: &[Candidate],
        record: &mut dyn FnMut(Answer) -> Result<()>,
    ) -> Result<OracleOutcome> {
        for c in candidates.iter().filter(|c| c.rank % 3 != 2) {
            let index: usize = c.name["img".len()..].parse().unwrap();
            record(Answer::Label {
                rank: c.rank,
                label: self.0[index],
            })?;
        }
        Ok(OracleOutcome::Done)
    }
}

/// An in-memory source of already-decoded images.
struct Memory {
    images: Vec<SourceImage>,
    pos: usize,
}

impl ImageSource for Memory {
    fn len_hint(&self) -> Option<usize> {
        Some(self.images.len())
    }

    fn next_chunk(&mut self, max: usize) -> Result<Vec<SourceImage>> {
        let end = (self.pos + max).min(self.images.len());
        let chunk = self.images[self.pos..end].to_vec();
        self.pos = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> Result<()> {
        self.pos = 0;
        Ok(())
    }
}

const SIDE: usize = 8;

fn make_images(n: usize, anomaly_every: usize, seed: u64) -> (ImageStore, Vec<Label>) {
    toy_images(n, SIDE, anomaly_every, seed)
}

fn auroc(scores: &[f32], labels: &[Label]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, li) in labels.iter().enumerate() {
        for (j, lj) in labels.iter().enumerate() {
            if *li == Label::Anomaly && *lj == Label::Normal {
                pairs += 1.0;
                wins += match scores[i].partial_cmp(&scores[j]) {
                    Some(std::cmp::Ordering::Greater) => 1.0,
                    Some(std::cmp::Ordering::Equal) => 0.5,
                    _ => 0.0,
                };
            }
        }
    }
    wins / pairs
}

#[test]
fn fixmatch_trains_a_downstream_classifier_and_the_loop_pieces_fit() {
    let (labelled, labels) = make_images(16, 4, 1);
    let (pool, pool_truth) = make_images(200, 20, 2);
    let config = TrainConfig {
        lr: 0.1,
        ..TrainConfig::default()
    };
    let mut trainer = config
        .check()
        .unwrap()
        .build((TinyClassifier::new(), FlipNoise, SPEC, 7))
        .unwrap();
    let before = auroc(
        &Scorer::new(trainer.ema(), SCORING).scores(&pool).unwrap(),
        &pool_truth,
    );
    let mut steps = Vec::new();
    let data = TrainData {
        labelled: &labelled,
        labels: &labels,
        unlabelled: &pool,
    };
    trainer.fit(&data, 60, &mut |m| steps.push(*m)).unwrap();
    assert_eq!(trainer.iteration(), 60);
    assert_eq!(steps.last().unwrap().iteration, 60);
    assert!(steps.iter().all(|m| m.loss.is_finite()));
    assert!(steps.last().unwrap().sup_loss < steps[0].sup_loss);

    let scores = Scorer::new(trainer.ema(), SCORING).scores(&pool).unwrap();
    let after = auroc(&scores, &pool_truth);
    assert!(
        after > 0.95 && after > before,
        "AUROC before {before}, after {after}"
    );

    // Query, label and stream the images through the downstream pieces.
    let current = vec![Label::Unknown; pool.len()];
    let input = QueryInput {
        scores: &scores,
        embeddings: None,
        labels: &current,
    };
    let picked = ClosestToHalf.select(&input, 6, 0).unwrap();
    assert_eq!(picked.len(), 6);
    let candidates: Vec<Candidate> = picked
        .iter()
        .enumerate()
        .map(|(rank, &index)| Candidate {
            rank,
            name: format!("img{index}"),
            score: scores[index],
            path: None,
        })
        .collect();
    let mut answers = Vec::new();
    let outcome = Truth(pool_truth.clone())
        .label(&candidates, &mut |a| {
            answers.push(a);
            Ok(())
        })
        .unwrap();
    assert_eq!(outcome, OracleOutcome::Done);
    assert_eq!(answers.len(), 4, "two of six skipped");

    let mut source = Memory {
        images: (0..5)
            .map(|i| SourceImage {
                name: format!("img{i}"),
                origin: "memory".into(),
                payload: ImagePayload::Pixels(pool.select(&[i]).unwrap()),
            })
            .collect(),
        pos: 0,
    };
    assert_eq!(source.next_chunk(3).unwrap().len(), 3);
    assert_eq!(source.next_chunk(3).unwrap().len(), 2);
    assert!(source.next_chunk(3).unwrap().is_empty());
    source.rewind().unwrap();
    assert_eq!(source.len_hint(), Some(5));
}

#[test]
fn resumed_training_continues_exactly() {
    let (labelled, labels) = make_images(16, 4, 3);
    let (pool, _) = make_images(64, 8, 4);
    let data = TrainData {
        labelled: &labelled,
        labels: &labels,
        unlabelled: &pool,
    };
    let cfg = TrainConfig::default().check().unwrap();
    let mut straight =
        FixMatch::new(TinyClassifier::new(), FlipNoise, cfg.clone(), SPEC, 11).unwrap();
    straight.fit(&data, 10, &mut |_| {}).unwrap();

    let mut first = FixMatch::new(TinyClassifier::new(), FlipNoise, cfg.clone(), SPEC, 11).unwrap();
    first.fit(&data, 4, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run.safetensors");
    first.save_checkpoint(&ckpt).unwrap();
    let mut resumed = FixMatch::new(TinyClassifier::new(), FlipNoise, cfg, SPEC, 11).unwrap();
    // Batches prepared on another thread must not change the result either.
    resumed.set_overlap(true);
    resumed.resume(&ckpt).unwrap();
    assert_eq!(resumed.iteration(), 4);
    resumed.fit(&data, 6, &mut |_| {}).unwrap();

    let a = straight.ema().w.as_tensor().to_vec2::<f32>().unwrap();
    let b = resumed.ema().w.as_tensor().to_vec2::<f32>().unwrap();
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn checkpoint_of_another_model_is_refused() {
    struct Other(TinyClassifier);
    impl Classifier for Other {
        fn forward_t(&self, images: &Tensor, train: bool) -> Result<Tensor> {
            self.0.forward_t(images, train)
        }
        fn variables(&self) -> Vec<NamedVar> {
            self.0.variables()
        }
        fn spec(&self) -> ModelSpec {
            ModelSpec {
                in_channels: 5,
                ..self.0.spec()
            }
        }
        fn device(&self) -> &Device {
            self.0.device()
        }
        fn duplicate(&self) -> Result<Self> {
            Ok(Other(self.0.duplicate()?))
        }
    }
    let cfg = TrainConfig::default().check().unwrap();
    let trainer = FixMatch::new(TinyClassifier::new(), FlipNoise, cfg.clone(), SPEC, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("tiny.safetensors");
    trainer.save_checkpoint(&ckpt).unwrap();
    let mut other = FixMatch::new(Other(TinyClassifier::new()), FlipNoise, cfg, SPEC, 1).unwrap();
    let msg = other.resume(&ckpt).unwrap_err().to_string();
    assert!(
        msg.contains("tiny.safetensors") && msg.contains("5 channels"),
        "{msg}"
    );
}
