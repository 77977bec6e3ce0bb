//! The one configuration file of every subcommand: each crate's section, assembled, plus the
//! application's own (`[truth]`, `[output]`, `[benchmark]`). A command-line flag overrides
//! its key; `--set KEY=VALUE` overrides any key.

use crate::error::{JobError, Result};
use crate::preset::Preset;
use anomalymatch_active::ActiveConfig;
use anomalymatch_augment::AugmentConfig;
use anomalymatch_core::config::{check_path, check_range, key};
use anomalymatch_core::{Check, Checked, DataConfig, ScoreConfig, TrainConfig};
use anomalymatch_io::SourceOptions;
use anomalymatch_models::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The annotated default configuration that `anomalymatch config` prints; a test keeps it equal
/// to [`Config::default`] and complete.
pub const DEFAULT_TOML: &str = include_str!("default_config.toml");

/// Every setting of every subcommand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The starting point the other keys apply on top of.
    pub preset: Preset,
    /// Seed of every random choice.
    pub seed: u64,
    /// Images, labels and decoding (core).
    pub data: DataConfig,
    /// How image paths are read: folders, zip, HDF5, FITS (io).
    pub source: SourceOptions,
    /// The backbone (models).
    pub model: ModelConfig,
    /// Weak and strong views (augment).
    pub augment: AugmentConfig,
    /// FixMatch (core).
    pub train: TrainConfig,
    /// Scoring (core).
    pub score: ScoreConfig,
    /// Active learning (active).
    pub active: ActiveConfig,
    /// Ground truth, for simulated experts and reports.
    pub truth: TruthConfig,
    /// Where results go.
    pub output: OutputConfig,
    /// The GZ1-merger protocol.
    pub benchmark: BenchmarkConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: Preset::default(),
            seed: 42,
            data: DataConfig::default(),
            source: SourceOptions::default(),
            model: ModelConfig::default(),
            augment: AugmentConfig::default(),
            train: TrainConfig::default(),
            score: ScoreConfig::default(),
            active: ActiveConfig::default(),
            truth: TruthConfig::default(),
            output: OutputConfig::default(),
            benchmark: BenchmarkConfig::default(),
        }
    }
}

impl Config {
    /// The defaults with `preset`'s keys applied: what a configuration naming only the preset
    /// gives.
    pub fn of_preset(preset: Preset) -> Self {
        // The preset's table is a constant that a test of `preset.rs` deserializes.
        let keys = Config::deserialize(toml::Value::Table(preset.table())).unwrap_or_default();
        Config { preset, ..keys }
    }
}

/// The `[truth]` section: a class file that says what each image is, for the simulated expert,
/// the benchmark and the hidden-truth report of `discover`. Never used for training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TruthConfig {
    /// A CSV with `filename` and `class_name` columns.
    pub classes: Option<PathBuf>,
    /// The class that counts as the anomaly; every other class is normal.
    pub anomaly_class: String,
    /// Classes left out altogether (neither anomaly nor normal).
    pub drop_classes: Vec<String>,
}

impl Default for TruthConfig {
    /// Galaxy Zoo's classes as the built-in data has them.
    fn default() -> Self {
        TruthConfig {
            classes: None,
            anomaly_class: "merger".into(),
            drop_classes: vec!["uncertain".into()],
        }
    }
}

/// The `[output]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Folder of every file a command writes (a `label` session lives in `DIR/session`).
    pub dir: PathBuf,
    /// `train` saves a resumable checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: "out".into(),
            checkpoint_every: 25,
        }
    }
}

/// The `[benchmark]` section: the GZ1-merger protocol of `BENCHMARKS.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// A folder holding `images/` and `classes.csv`.
    pub data: PathBuf,
    /// One run per seed.
    pub seeds: Vec<u64>,
    /// `protocol` (the protocol's expert) or query strategy names; one run each per seed.
    pub queries: Vec<String>,
    /// Baselines run through the protocol beside FixMatch: `probe`, `knn`, `iforest` or
    /// `supervised`.
    pub baselines: Vec<String>,
    /// Anomalies labelled at the start.
    pub start_anomalies: usize,
    /// Normals labelled at the start.
    pub start_normals: usize,
    /// The protocol's expert labels this many of the highest-scored normals and as many
    /// anomalies after each cycle.
    pub expert_per_class: usize,
    /// A JSON-lines file every finished run appends its lines to, with the commit, the
    /// changed keys and the command (default: `OUT/benchmark/results.jsonl`).
    pub results: Option<PathBuf>,
}

impl Default for BenchmarkConfig {
    fn default() -> Self {
        BenchmarkConfig {
            data: "../shared/data/gz1-sdss".into(),
            seeds: vec![42, 43, 44],
            queries: vec![PROTOCOL.into()],
            baselines: Vec::new(),
            start_anomalies: 10,
            start_normals: 90,
            expert_per_class: 10,
            results: None,
        }
    }
}

/// The `queries` entry for the protocol's own expert.
pub const PROTOCOL: &str = "protocol";

/// The baselines' names, as `--baseline` and `benchmark.baselines` take them.
pub const BASELINES: [&str; 4] = ["probe", "knn", "iforest", SUPERVISED];

/// The baseline that fine-tunes the network without the unlabelled images.
pub const SUPERVISED: &str = "supervised";

/// The checked configuration: every section checked once, when it is made ([`Settings::new`],
/// [`load`]), and handed out only checked, so that nothing downstream checks it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The starting point the other keys applied on top of.
    pub preset: Preset,
    /// Seed of every random choice.
    pub seed: u64,
    /// Images, labels and decoding (core).
    pub data: Checked<DataConfig>,
    /// How image paths are read (io).
    pub source: Checked<SourceOptions>,
    /// The backbone (models).
    pub model: Checked<ModelConfig>,
    /// Weak and strong views (augment).
    pub augment: Checked<AugmentConfig>,
    /// FixMatch (core).
    pub train: Checked<TrainConfig>,
    /// Scoring (core).
    pub score: Checked<ScoreConfig>,
    /// Active learning (active).
    pub active: Checked<ActiveConfig>,
    /// Ground truth.
    pub truth: Checked<TruthConfig>,
    /// Where results go.
    pub output: Checked<OutputConfig>,
    /// The GZ1-merger protocol.
    pub benchmark: Checked<BenchmarkConfig>,
}

impl Settings {
    /// Checks every section of `config` once; the error lists every bad key of every section.
    pub fn new(config: Config) -> anomalymatch_core::Result<Settings> {
        let mut errors = Vec::new();
        fn part<T: Check>(section: T, at: &str, errors: &mut Vec<String>) -> Option<Checked<T>> {
            match section.check_at(at) {
                Ok(checked) => Some(checked),
                Err(anomalymatch_core::Error::Config(problems)) => {
                    errors.extend(problems);
                    None
                }
                Err(other) => {
                    errors.push(other.to_string());
                    None
                }
            }
        }
        let data = part(config.data, "data", &mut errors);
        let source = part(config.source, "source", &mut errors);
        let model = part(config.model, "model", &mut errors);
        let augment = part(config.augment, "augment", &mut errors);
        let train = part(config.train, "train", &mut errors);
        let score = part(config.score, "score", &mut errors);
        let active = part(config.active, "active", &mut errors);
        let truth = part(config.truth, "truth", &mut errors);
        let output = part(config.output, "output", &mut errors);
        let benchmark = part(config.benchmark, "benchmark", &mut errors);
        match (
            data, source, model, augment, train, score, active, truth, output, benchmark,
        ) {
            (
                Some(data),
                Some(source),
                Some(model),
                Some(augment),
                Some(train),
                Some(score),
                Some(active),
                Some(truth),
                Some(output),
                Some(benchmark),
            ) if errors.is_empty() => Ok(Settings {
                preset: config.preset,
                seed: config.seed,
                data,
                source,
                model,
                augment,
                train,
                score,
                active,
                truth,
                output,
                benchmark,
            }),
            _ => Err(anomalymatch_core::Error::Config(errors)),
        }
    }

    /// The plain configuration these settings were checked from, to record or print it.
    pub fn to_config(&self) -> Config {
        Config {
            preset: self.preset,
            seed: self.seed,
            data: (*self.data).clone(),
            source: (*self.source).clone(),
            model: (*self.model).clone(),
            augment: (*self.augment).clone(),
            train: (*self.train).clone(),
            score: (*self.score).clone(),
            active: (*self.active).clone(),
            truth: (*self.truth).clone(),
            output: (*self.output).clone(),
            benchmark: (*self.benchmark).clone(),
        }
    }

    /// These settings with `edit` applied to the plain configuration, checked again.
    pub fn edited(&self, edit: impl FnOnce(&mut Config)) -> Result<Settings> {
        let mut config = self.to_config();
        edit(&mut config);
        Ok(Settings::new(config)?)
    }
}

impl Check for TruthConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        check_path(errors, key(prefix, "classes"), self.classes.as_deref());
        if self.anomaly_class.trim().is_empty() {
            errors.push(format!(
                "{}: must name a class",
                key(prefix, "anomaly_class")
            ));
        }
    }
}

impl Check for OutputConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        check_path(errors, key(prefix, "dir"), Some(&self.dir));
    }
}

impl Check for BenchmarkConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let k = |name| key(prefix, name);
        check_path(errors, k("data"), Some(&self.data));
        check_path(errors, k("results"), self.results.as_deref());
        if self.seeds.is_empty() {
            errors.push(format!("{}: name at least one seed", k("seeds")));
        }
        for q in &self.queries {
            if q != PROTOCOL
                && let Err(e) = anomalymatch_active::by_name(q)
            {
                errors.push(format!("{}: {e}", k("queries")));
            }
        }
        for name in &self.baselines {
            if !BASELINES.contains(&name.as_str()) {
                errors.push(format!(
                    "{}: unknown baseline {name:?}; expected one of {}",
                    k("baselines"),
                    BASELINES.join(", ")
                ));
            }
        }
        check_range(
            errors,
            k("start_anomalies"),
            self.start_anomalies,
            1,
            1_000_000,
        );
        check_range(errors, k("start_normals"), self.start_normals, 1, 1_000_000);
        check_range(
            errors,
            k("expert_per_class"),
            self.expert_per_class,
            1,
            1_000_000,
        );
    }
}

/// One override of a key: from a flag (`--iters 40`) or from `--set train.iterations=40`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key, e.g. `train.iterations`.
    pub key: String,
    /// The new value.
    pub value: toml::Value,
    /// Where it came from, for error messages (e.g. `--iters`).
    pub origin: String,
}

impl Override {
    /// An override of `key` from the flag `origin`.
    pub fn new(key: &str, value: impl Into<toml::Value>, origin: &str) -> Self {
        Override {
            key: key.into(),
            value: value.into(),
            origin: origin.into(),
        }
    }

    /// Parses `KEY=VALUE` as `--set` gives it: the value is read as TOML (numbers, booleans,
    /// arrays, quoted strings), and taken as a plain string when it is not TOML.
    pub fn parse_set(text: &str) -> Result<Self> {
        let (k, v) = text
            .split_once('=')
            .ok_or_else(|| JobError::Usage(format!("--set {text:?}: expected KEY=VALUE")))?;
        let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(v.to_string()));
        Ok(Override::new(k.trim(), value, &format!("--set {text}")))
    }
}

/// Reads the configuration: the defaults, the preset's keys, the file if one is given, then
/// the overrides in order; and checks it. Errors name the file and line, the flag, or the key.
///
/// The file is parsed once, into a table laid over the preset's whole configuration (so every
/// section's `kind` is in force); the overrides are set in that table, which is deserialized
/// once and checked once. Only when that fails is the work retraced, to name the file's line
/// or the override at fault.
pub fn load(file: Option<&Path>, overrides: &[Override]) -> Result<Settings> {
    let file = match file {
        Some(path) => Some((path, read_text(path)?)),
        None => None,
    };
    let file_table = match &file {
        Some((path, text)) => {
            toml::from_str::<toml::Table>(text).map_err(|e| toml_error(path, text, e))?
        }
        None => toml::Table::new(),
    };
    let preset = match overrides.iter().rev().find(|o| o.key == "preset") {
        Some(o) => Preset::deserialize(o.value.clone()).map_err(|source| JobError::Config {
            place: o.origin.clone(),
            source,
        })?,
        None => match (file_table.get("preset"), &file) {
            (Some(v), Some((path, _))) => {
                Preset::deserialize(v.clone()).map_err(|source| JobError::Config {
                    place: format!("{}: preset", path.display()),
                    source,
                })?
            }
            _ => Preset::default(),
        },
    };
    let base = toml::Table::try_from(Config::of_preset(preset))
        .map_err(|e| JobError::Failed(format!("the {preset:?} preset: {e}")))?;
    let mut table = base.clone();
    merge(&mut table, file_table.clone());
    for o in overrides {
        insert(&mut table, &o.key, o.value.clone())
            .map_err(|m| JobError::Usage(format!("{}: {m}", o.origin)))?;
    }
    let config = match Config::deserialize(toml::Value::Table(table)) {
        Ok(config) => config,
        Err(e) => return Err(blame(file.as_ref(), base, file_table, overrides, &e)),
    };
    Settings::new(config).map_err(|e| {
        let origin = file
            .as_ref()
            .map_or(String::new(), |(p, _)| format!("{}: ", p.display()));
        match e {
            anomalymatch_core::Error::Config(problems) => {
                JobError::Usage(format!("{origin}{}", problems.join("; ")))
            }
            other => JobError::from(other),
        }
    })
}

/// The text of a configuration file.
fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            JobError::Usage(format!(
                "{}: not UTF-8 text; a configuration is a TOML file",
                path.display()
            ))
        } else {
            JobError::io(path, e)
        }
    })
}

/// Names what made a configuration unreadable: the file's line (an unknown key, a bad type)
/// or the first override after which it no longer reads.
fn blame(
    file: Option<&(&Path, String)>,
    base: toml::Table,
    file_table: toml::Table,
    overrides: &[Override],
    error: &toml::de::Error,
) -> JobError {
    if let Some((path, text)) = file
        && let Err(e) = toml::from_str::<Config>(text)
    {
        return toml_error(path, text, e);
    }
    let mut table = base;
    merge(&mut table, file_table);
    for o in overrides {
        // Every insert succeeded once already.
        let _ = insert(&mut table, &o.key, o.value.clone());
        if let Err(source) = Config::deserialize(toml::Value::Table(table.clone())) {
            return JobError::Config {
                place: format!("{} ({})", o.origin, o.key),
                source,
            };
        }
    }
    JobError::Usage(error.message().trim().to_string())
}

/// `path:line: message` for a TOML error (`path: message` when it has no place in the text).
fn toml_error(path: &Path, text: &str, e: toml::de::Error) -> JobError {
    let place = match e.span() {
        Some(s) => format!(
            "{}:{}",
            path.display(),
            text[..s.start.min(text.len())].matches('\n').count() + 1
        ),
        None => path.display().to_string(),
    };
    JobError::Config { place, source: e }
}

/// Lays `over` on `base`, section by section. A section whose `kind` changes is replaced
/// whole: the old variant's parameters do not belong to the new one.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if o.get(KIND).is_none_or(|kind| b.get(KIND) == Some(kind)) =>
            {
                merge(b, o)
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets the dotted `key` in `table`, creating sections on the way. Setting a section's `kind`
/// to another variant drops the old variant's parameters.
fn insert(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts.split_last().ok_or_else(|| "empty key".to_string())?;
    let mut t = table;
    for part in path {
        t = t
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{part} is not a section"))?;
    }
    if *last == KIND && t.get(KIND) != Some(&value) {
        t.clear();
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// The key that picks a section's variant.
const KIND: &str = "kind";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_is_the_default_and_names_every_key() {
        let parsed: Config = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed, Config::default());
        // Every key of the default appears in the annotated file, commented or not.
        let full = toml::to_string(&Config::default()).unwrap();
        let mut section = String::new();
        for line in full.lines() {
            if let Some(name) = line.strip_prefix('[') {
                section = name.trim_end_matches(']').to_string();
            } else if let Some((k, _)) = line.split_once(" = ") {
                let found = DEFAULT_TOML.lines().any(|l| {
                    let l = l.trim_start_matches("# ");
                    l.starts_with(&format!("{k} = "))
                });
                assert!(found, "[{section}] {k} is not in default_config.toml");
            }
        }
        // Optional keys are shown, commented out, with a comment above each key.
        for optional in ["images", "labels", "weights", "classes"] {
            assert!(
                DEFAULT_TOML
                    .lines()
                    .any(|l| l.starts_with(&format!("# {optional} = "))),
                "{optional}"
            );
        }
        for (i, line) in DEFAULT_TOML.lines().enumerate() {
            let is_key = !line.starts_with('#') && line.contains(" = ");
            if is_key {
                let above = DEFAULT_TOML.lines().nth(i - 1).unwrap_or("");
                assert!(above.starts_with('#'), "no comment above {line:?}");
            }
        }
    }

    #[test]
    fn flags_and_set_override_the_file_and_errors_name_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "seed = 7\n[train]\nlr = 0.03\niterations = 5\n").unwrap();
        let c = load(
            Some(&file),
            &[
                Override::new("train.iterations", 40, "--iters"),
                Override::parse_set("data.images=some/folder").unwrap(),
                Override::parse_set("augment.preset=\"astro\"").unwrap(),
            ],
        )
        .unwrap();
        assert_eq!((c.seed, c.train.lr, c.train.iterations), (7, 0.03, 40));
        assert_eq!(c.data.images.as_deref(), Some(Path::new("some/folder")));

        std::fs::write(&file, "[train]\nlr = 0.03\nlearning_rate = 1\n").unwrap();
        let e = load(Some(&file), &[]).unwrap_err();
        assert!(e.is_usage());
        let msg = e.to_string();
        assert!(
            msg.contains("c.toml:3:") && msg.contains("learning_rate"),
            "{msg}"
        );
        // The parser's own error stays underneath, for a caller that wants its span.
        let cause = std::error::Error::source(&e);
        assert!(
            cause.is_some_and(|c| c.is::<toml::de::Error>()),
            "{cause:?}"
        );

        let e = load(
            None,
            &[Override::new("train.iterations", "many", "--iters")],
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("--iters (train.iterations):"),
            "{e}"
        );

        let e = load(None, &[Override::new("train.lr", -1.0, "--lr")]).unwrap_err();
        assert!(e.to_string().contains("train.lr: must be > 0"), "{e}");

        let e = load(Some(&dir.path().join("missing.toml")), &[]).unwrap_err();
        assert!(!e.is_usage() && e.to_string().contains("missing.toml"));
    }

    #[test]
    fn set_reaches_into_a_section_chosen_by_kind_and_paths_must_not_be_empty() {
        use anomalymatch_core::Stretch;
        let set = |texts: &[&str]| {
            let o: Vec<Override> = texts
                .iter()
                .map(|t| Override::parse_set(t).unwrap())
                .collect();
            load(None, &o)
        };
        // A parameter keeps the kind in force; a new kind starts from its own defaults.
        let c = set(&["data.stretch.low=1.0"]).unwrap();
        assert_eq!(
            c.data.stretch,
            Stretch::Percentile {
                low: 1.0,
                high: 99.5
            }
        );
        let c = set(&["data.stretch.kind=\"asinh\""]).unwrap();
        assert_eq!(c.data.stretch, Stretch::Asinh { softening: 0.1 });
        let c = set(&["data.stretch.kind=\"zscale\"", "data.stretch.contrast=0.5"]).unwrap();
        assert_eq!(c.data.stretch, Stretch::ZScale { contrast: 0.5 });
        let e = set(&["data.stretch.softening=2"]).unwrap_err().to_string();
        assert!(e.contains("softening"), "{e}");

        for key in ["data.images", "data.labels", "output.dir", "model.weights"] {
            let e = set(&[&format!("{key}=")]).unwrap_err().to_string();
            assert!(e.contains(&format!("{key}: is empty")), "{e}");
        }
    }

    #[test]
    fn channels_outside_the_written_forms_are_named_plainly() {
        for value in ["-1", "0", "1.5", "\"cmyk\""] {
            let e = load(
                None,
                &[Override::parse_set(&format!("data.channels={value}")).unwrap()],
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("data.channels") && e.contains("positive number of bands"),
                "{value}: {e}"
            );
            assert!(!e.contains("ChannelRepr") && !e.contains("untagged"), "{e}");
        }
    }

    #[test]
    fn a_preset_lies_under_the_file_and_the_flags() {
        use anomalymatch_core::Crop;
        let crop = |file: Option<&Path>, o: &[Override]| load(file, o).unwrap().data.crop;
        let preset = |name: &str| Override::new("preset", name, "--preset");
        assert_eq!(crop(None, &[]), Crop::Auto);
        assert_eq!(crop(None, &[preset("original")]), Crop::WHOLE);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "preset = \"original\"\n[data]\nsize = 64\n").unwrap();
        let c = load(Some(&file), &[]).unwrap();
        assert_eq!(
            (c.preset, c.data.crop, c.data.size),
            (Preset::Original, Crop::WHOLE, 64)
        );
        // A key the user sets wins over the preset's; the flag wins over the file's preset.
        let half = Override::new("data.crop", 0.5, "--set data.crop=0.5");
        assert_eq!(crop(Some(&file), &[half]), Crop::Share(0.5));
        assert_eq!(crop(Some(&file), &[preset("recommended")]), Crop::Auto);
        let e = load(None, &[preset("fastest")]).unwrap_err();
        assert!(
            e.to_string().starts_with("--preset: unknown variant"),
            "{e}"
        );
    }
}
