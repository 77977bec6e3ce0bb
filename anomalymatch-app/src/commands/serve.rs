//! `anomalymatch serve`: the labelling session as a local web page. The same session folder
//! (`OUT/session`), journal and trainer as `label`: the two can take turns on one session. The
//! page lists the current candidates with their scores, shows one large with display controls,
//! takes answers by button or key, and trains, scores, rotates the pool, saves and loads the
//! model, and exports the labels.
//!
//! The server binds 127.0.0.1 unless told otherwise (`--bind ADDR --allow-remote`, with a
//! warning), and every request must carry the random token of the printed URL.

use crate::cli::{Common, DataFlags, Flags, push, text};
use crate::serve::images::{Display, LARGE};
use crate::serve::state::{Progress, Served, Shared};
use crate::serve::token::new_token;
use crate::stdout::{Console, warning};
use anomalymatch_core::Check;
use anomalymatch_jobs::components;
use anomalymatch_jobs::{JobError, Override, Report, Result, Settings, Silent};
use clap::Args;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Images, labels, size and iterations.
    #[command(flatten)]
    pub data: DataFlags,
    /// The page's default query-strategy sort [key: active.query].
    #[arg(long, value_name = "STRATEGY")]
    pub query: Option<String>,
    /// Address to listen on; anything but a loopback address also needs --allow-remote.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Let --bind name an address other machines can reach (the token still guards it).
    #[arg(long)]
    pub allow_remote: bool,
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Show the candidates of a finished `score` run (its top_candidates.csv) instead of the
    /// pool's window.
    #[arg(long, value_name = "FILE")]
    pub candidates: Option<PathBuf>,
}

impl Flags for ServeArgs {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(
            all,
            "active.query",
            self.query.as_deref().map(text),
            "--query",
        );
    }
}

/// Runs `serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.data, &args])?;
    if !args.bind.is_loopback() {
        if !args.allow_remote {
            return Err(JobError::Usage(format!(
                "--bind {}: other machines could reach the session; add --allow-remote if \
                 that is what you want",
                args.bind
            )));
        }
        warning!(
            "serving on {}, reachable from other machines; anyone with the URL's \
             token can label",
            args.bind
        );
    }
    let from_file = args
        .candidates
        .as_deref()
        .map(read_candidates)
        .transpose()?;
    // Bind before the slow part, so a taken port fails at once.
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| JobError::Failed(format!("cannot listen on {addr}: {e}")))?;
    let port = listener.local_addr().map_or(args.port, |a| a.port());
    let local_only = args.bind.is_loopback();
    let shared = open(&config, args.common.quiet, from_file, port, local_only)?;
    crate::serve::run(listener, shared, args.common.quiet)
}

/// Opens the session as `label` does, and the display's own reader of the same images: what
/// the router serves (the fuzz target of the request handlers opens it the same way).
pub fn open(
    config: &Settings,
    quiet: bool,
    from_file: Option<Vec<(String, f32)>>,
    port: u16,
    local_only: bool,
) -> Result<Arc<Shared>> {
    let (images, labels_path) = components::images_and_labels(config)?;
    let session_dir = config.output.dir.join("session");
    let query = config.active.query.clone();
    // The page shows its own progress: no bars on the terminal.
    let report = Console { quiet, bars: false };
    let session = components::session(config, &images, labels_path.as_deref(), &report)?;
    let spec = session.trainer().data_spec();
    // The display's pixels are a new value of the section: checked as such.
    let display_loader = (*config.data)
        .clone()
        .with_spec(anomalymatch_core::DataSpec {
            size: spec.size.max(LARGE),
            ..spec
        })
        .check()?
        .build(())?
        .whole_frame();
    let display = Display::new(
        components::open_source(config, &images, &Silent)?,
        display_loader,
        &images,
    );
    report.say(&format!(
        "session {}: cycle {}, {} labels",
        session_dir.display(),
        session.cycles_done(),
        session.labels().len()
    ));
    let (progress, _) = tokio::sync::watch::channel(Progress::default());
    Ok(Arc::new(Shared {
        token: new_token(),
        port,
        local_only,
        served: Mutex::new(Served {
            session,
            scores: HashMap::new(),
            from_file,
        }),
        display,
        progress,
        busy: false.into(),
        dir: session_dir,
        user_labels: labels_path,
        query,
        score: config.score.options(false),
    }))
}

/// The candidates of a `score` run's `top_candidates.csv` (`rank,filename,score`).
fn read_candidates(path: &Path) -> Result<Vec<(String, f32)>> {
    let failed = |why: String| JobError::Failed(format!("{}: {why}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|e| failed(e.to_string()))?;
    let headers = reader.headers().map_err(|e| failed(e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| failed(format!("no {name} column (want rank,filename,score)")))
    };
    let (name_at, score_at) = (column("filename")?, column("score")?);
    let mut out = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| failed(e.to_string()))?;
        let name = row.get(name_at).unwrap_or_default().to_string();
        let score: f32 = row
            .get(score_at)
            .unwrap_or_default()
            .parse()
            .map_err(|_| failed(format!("line {}: the score is not a number", line + 2)))?;
        out.push((name, score));
    }
    Ok(out)
}
