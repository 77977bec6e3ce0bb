//! What the benchmark keeps so that no measurement is lost: each run's folder resumes, and
//! the results file collects every finished run.
//!
//! A run (one seed and one query) lives in `OUT/benchmark/seed-S-QUERY/`, beside its session:
//! - `run.json`: the configuration that decides its numbers ([`identity`]); a rerun with
//!   another configuration in the same folder is refused, one with more cycles continues;
//! - `scored.json`: the metrics of a cycle scored but not yet labelled, so that a kill during
//!   the expert's turn keeps them;
//! - `cycles.jsonl`: the lines of the finished cycles, rewritten atomically after each.
//!
//! A finished run appends its lines to the results file (`benchmark.results`), each with the
//! code's commit, its run id, every key changed from its preset and the command line. A
//! rerun whose lines the results file already holds, at the same commit, is not run again: a
//! committed results file carries finished runs across machines.

use crate::config::Config;
use crate::error::{JobError, Result};
use crate::report::Report;
use anomalymatch_core::atomic::{write_atomic, write_bytes_atomic};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The last commit that changed code (see `build.rs`), `+dirty` for uncommitted changes.
pub const COMMIT: &str = env!("ANOMALYMATCH_COMMIT");

/// Keys that do not change a run's numbers: where outputs go, which seeds, queries and
/// baselines the invocation runs, how many cycles (a run with more cycles extends one with
/// fewer) and the top-level seed (each run sets its own).
const NOT_IDENTITY: [&str; 6] = [
    "output",
    "seed",
    "active.cycles",
    "benchmark.seeds",
    "benchmark.queries",
    "benchmark.baselines",
];

/// The configuration that decides a run's numbers, as a JSON object.
pub fn identity(config: &Config) -> Result<Value> {
    let mut v = serde_json::to_value(config)
        .map_err(|e| JobError::Failed(format!("benchmark configuration: {e}")))?;
    for key in NOT_IDENTITY.iter().chain(&["benchmark.results"]) {
        remove(&mut v, key);
    }
    Ok(v)
}

/// Every key of `config`'s identity that differs from its preset's, dotted, with its value.
pub fn changed(config: &Config) -> Result<BTreeMap<String, Value>> {
    let base = identity(&Config::of_preset(config.preset))?;
    Ok(differences(&base, &identity(config)?)
        .into_iter()
        .map(|(k, (_, new))| (k, new))
        .collect())
}

/// Every dotted key whose value differs between `old` and `new`, with both values (`Null`
/// where a side lacks the key).
fn differences(old: &Value, new: &Value) -> BTreeMap<String, (Value, Value)> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let mut out = BTreeMap::new();
    for k in a.keys().chain(b.keys()) {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            let value = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
            out.insert(k.clone(), (value(x), value(y)));
        }
    }
    out
}

/// The short id of one run: its identity, seed and query (or baseline).
pub fn run_id(identity: &Value, seed: u64, query: &str) -> String {
    let mut h = Sha256::new();
    h.update(identity.to_string());
    h.update(format!("\0{seed}\0{query}"));
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A command line as the results file names it: `program` and its `args`, each quoted as a
/// shell word where it needs to be.
pub fn command_line(program: &str, args: impl IntoIterator<Item = String>) -> String {
    let args: Vec<String> = args.into_iter().map(|a| quote(&a)).collect();
    format!("{program} {}", args.join(" "))
}

/// `a` as a shell word: quoted when it holds anything but plain characters.
fn quote(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,/=:+@".contains(c);
    if !a.is_empty() && a.chars().all(plain) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn remove(v: &mut Value, dotted: &str) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut at = v;
    for p in parts {
        match at.get_mut(p) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(o) = at.as_object_mut() {
        o.remove(last);
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// One run's folder: its identity, the finished cycles' lines and a scored cycle's metrics.
pub struct RunFolder {
    dir: PathBuf,
    /// The lines of the finished cycles, in order.
    pub lines: Vec<Value>,
}

impl RunFolder {
    /// Opens `dir` for a run of `identity`: creates it, or resumes it when its `run.json`
    /// matches, or refuses it (naming the keys that differ) when it does not. A folder
    /// without `run.json` holds no finished cycle and starts afresh.
    pub fn open(dir: &Path, identity: &Value) -> Result<Self> {
        let record = dir.join("run.json");
        match std::fs::read(&record) {
            Ok(bytes) => {
                let old: Value =
                    serde_json::from_slice(&bytes).map_err(|e| JobError::json(&record, e))?;
                if &old != identity {
                    let differ: Vec<String> = differences(&old, identity)
                        .into_iter()
                        .map(|(k, (was, _))| format!("{k} was {was}"))
                        .collect();
                    return Err(JobError::Usage(format!(
                        "{}: this folder holds a run of another configuration ({}); give \
                         another --out, or remove the folder to start it afresh",
                        dir.display(),
                        differ.join(", ")
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).map_err(|e| JobError::io(dir, e))?;
                }
                std::fs::create_dir_all(dir).map_err(|e| JobError::io(dir, e))?;
                let text =
                    serde_json::to_vec_pretty(identity).map_err(|e| JobError::json(&record, e))?;
                write_bytes_atomic(&record, &text)?;
            }
            Err(e) => return Err(JobError::io(&record, e)),
        }
        let lines = read_lines(&dir.join("cycles.jsonl"))?.0;
        Ok(RunFolder {
            dir: dir.into(),
            lines,
        })
    }

    /// Seconds the run spent before this process took it up.
    pub fn seconds_before(&self) -> f64 {
        self.lines
            .last()
            .and_then(|l| l.get("seed_s")?.as_f64())
            .unwrap_or(0.0)
    }

    /// Keeps the metrics of a scored cycle until the cycle finishes.
    pub fn save_scored(&self, metrics: &Value) -> Result<()> {
        write_bytes_atomic(
            &self.dir.join("scored.json"),
            metrics.to_string().as_bytes(),
        )?;
        Ok(())
    }

    /// The kept metrics of `cycle`, if it was scored.
    pub fn scored(&self, cycle: usize) -> Option<Value> {
        let bytes = std::fs::read(self.dir.join("scored.json")).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        (v.get("cycle")?.as_u64()? == cycle as u64).then_some(v)
    }

    /// Adds a finished cycle's line, or replaces the line of the same cycle (the session
    /// repeats a cycle's report after a crash), rewriting `cycles.jsonl` atomically.
    pub fn finish_cycle(&mut self, line: Value) -> Result<()> {
        let cycle = line.get("cycle").cloned();
        self.lines.retain(|l| l.get("cycle") != cycle.as_ref());
        self.lines.push(line);
        let path = self.dir.join("cycles.jsonl");
        write_atomic(&path, |w| {
            for l in &self.lines {
                writeln!(w, "{l}")?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// The JSON lines of `path` (none when it does not exist) and how many lines could not be
/// read (a torn last line of a killed append, or damage).
pub fn read_lines(path: &Path) -> Result<(Vec<Value>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(JobError::io(path, e)),
    };
    let mut lines = Vec::new();
    let mut bad = 0;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => lines.push(v),
            _ => bad += 1,
        }
    }
    Ok((lines, bad))
}

/// The results file: every finished run's lines, appended.
pub struct Results {
    path: PathBuf,
    lines: Vec<Value>,
    /// The command line each appended line names.
    command: String,
}

impl Results {
    /// Reads the results file at `path` (empty when it does not exist yet); lines appended
    /// name `command`, what made them.
    pub fn open(path: &Path, command: &str, report: &dyn Report) -> Result<Self> {
        let (lines, bad) = read_lines(path)?;
        if bad > 0 {
            report.warn(&format!(
                "{}: {bad} line(s) are not JSON objects and are ignored",
                path.display()
            ));
        }
        Ok(Results {
            path: path.into(),
            lines,
            command: command.into(),
        })
    }

    /// The lines of run `id` at this commit, cycles 1 to `cycles`, if the file holds them all.
    fn finished(&self, id: &str, cycles: usize) -> Option<Vec<Value>> {
        let mut by_cycle: BTreeMap<u64, Value> = BTreeMap::new();
        for l in &self.lines {
            let ours = l.get("run").and_then(Value::as_str) == Some(id)
                && l.get("commit").and_then(Value::as_str) == Some(COMMIT);
            if let (true, Some(c)) = (ours, l.get("cycle").and_then(Value::as_u64)) {
                by_cycle.insert(c, l.clone());
            }
        }
        let lines: Vec<Value> = (1..=cycles as u64)
            .map_while(|c| by_cycle.remove(&c))
            .collect();
        (lines.len() == cycles).then_some(lines)
    }

    /// The lines of `run`: taken from the file when it holds them all, passed to `on_line`
    /// as the run would have passed them; otherwise made by `measure` and appended.
    pub fn measure(
        &mut self,
        run: &super::Run,
        on_line: &mut dyn FnMut(&Value),
        measure: impl FnOnce(&mut dyn FnMut(&Value)) -> Result<Vec<Value>>,
    ) -> Result<Vec<Value>> {
        let cycles = run.config.active.cycles;
        if let Some(lines) = self.finished(&run.id, cycles) {
            lines.iter().for_each(&mut *on_line);
            return Ok(lines);
        }
        let lines = measure(on_line)?;
        self.append(&lines, &run.id, &run.changed)?;
        Ok(lines)
    }

    /// Appends a finished run's lines, each tagged with the commit, the run id, the changed
    /// keys and the command line, in one synced write; lines it already holds are skipped.
    fn append(
        &mut self,
        lines: &[Value],
        id: &str,
        changed: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let command = &self.command;
        let mut block = String::new();
        let mut added = Vec::new();
        for l in lines {
            let mut o: Map<String, Value> = l.as_object().cloned().unwrap_or_default();
            o.insert("commit".into(), COMMIT.into());
            o.insert("run".into(), id.into());
            o.insert(
                "changed".into(),
                serde_json::to_value(changed).unwrap_or_default(),
            );
            o.insert("command".into(), command.clone().into());
            let cycle = o.get("cycle").and_then(Value::as_u64);
            let held = self.lines.iter().any(|h| {
                h.get("run").and_then(Value::as_str) == Some(id)
                    && h.get("commit").and_then(Value::as_str) == Some(COMMIT)
                    && h.get("cycle").and_then(Value::as_u64) == cycle
            });
            if !held {
                let v = Value::Object(o);
                block.push_str(&format!("{v}\n"));
                added.push(v);
            }
        }
        if block.is_empty() {
            return Ok(());
        }
        let failed = |e: std::io::Error| JobError::io(&self.path, e);
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        // One write of whole lines on an append-only file: a kill leaves at most a torn last
        // line, which readers count and skip.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(failed)?;
        // After a torn line, start on a line of our own.
        let len = f.metadata().map_err(failed)?.len();
        if len > 0 && std::fs::read(&self.path).map_err(failed)?.last() != Some(&b'\n') {
            block.insert(0, '\n');
        }
        f.write_all(block.as_bytes()).map_err(failed)?;
        f.sync_all().map_err(failed)?;
        self.lines.extend(added);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_ignores_where_and_how_many_but_not_what() {
        let base = Config::default();
        let mut other = base.clone();
        other.output.dir = "elsewhere".into();
        other.benchmark.seeds = vec![7];
        other.active.cycles = 1;
        assert_eq!(identity(&base).unwrap(), identity(&other).unwrap());
        other.train.iterations += 1;
        assert_ne!(identity(&base).unwrap(), identity(&other).unwrap());
        let c = changed(&other).unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["train.iterations"]);
        assert!(
            changed(&Config::of_preset(crate::preset::Preset::Original))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_run_folder_resumes_its_cycles_and_refuses_another_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("seed-1");
        let id = json!({"train": {"iterations": 5}});
        let mut f = RunFolder::open(&run, &id).unwrap();
        assert!(f.lines.is_empty());
        f.save_scored(&json!({"cycle": 1, "auroc": 0.7})).unwrap();
        assert_eq!(f.scored(1).unwrap()["auroc"], 0.7);
        assert!(f.scored(2).is_none());
        f.finish_cycle(json!({"cycle": 1, "seed_s": 12.5})).unwrap();
        let mut again = RunFolder::open(&run, &id).unwrap();
        assert_eq!(again.lines.len(), 1);
        // A cycle reported again after a crash replaces its line.
        again
            .finish_cycle(json!({"cycle": 1, "seed_s": 12.5}))
            .unwrap();
        assert_eq!(again.lines.len(), 1);
        assert_eq!(again.seconds_before(), 12.5);
        let e = RunFolder::open(&run, &json!({"train": {"iterations": 6}}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("train.iterations was 5"), "{e}");
    }

    #[test]
    fn results_append_once_per_run_and_cycle_and_skip_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results/r.jsonl");
        let mut r = Results::open(&path, "anomalymatch benchmark", &crate::Silent).unwrap();
        let lines = [
            json!({"cycle": 1, "auroc": 0.6}),
            json!({"cycle": 2, "auroc": 0.7}),
        ];
        let changed = BTreeMap::from([("train.lr".to_string(), json!(0.01))]);
        r.append(&lines, "abc", &changed).unwrap();
        r.append(&lines, "abc", &changed).unwrap();
        assert_eq!(r.finished("abc", 2).unwrap().len(), 2);
        assert!(r.finished("abc", 3).is_none() && r.finished("abd", 1).is_none());
        // A kill mid-append leaves a torn line: counted, skipped, the rest still read.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"cycle\": 3, \"au").unwrap();
        drop(f);
        r.append(&[json!({"cycle": 3, "auroc": 0.8})], "abc", &changed)
            .unwrap();
        let (read, bad) = read_lines(&path).unwrap();
        assert_eq!((read.len(), bad), (3, 1));
        assert_eq!(
            Results::open(&path, "", &crate::Silent)
                .unwrap()
                .finished("abc", 3)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(read[0]["changed"]["train.lr"], 0.01);
        assert_eq!(read[0]["commit"], COMMIT);
        assert_eq!(read[0]["command"], "anomalymatch benchmark");
    }

    #[test]
    fn command_words_are_quoted_when_they_need_it() {
        assert_eq!(quote("--set"), "--set");
        assert_eq!(quote("train.lr=0.01"), "train.lr=0.01");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let line = command_line("anomalymatch", ["benchmark".into(), "a b".into()]);
        assert_eq!(line, "anomalymatch benchmark 'a b'");
    }
}
