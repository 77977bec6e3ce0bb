//! `anomalymatch serve`'s web server: a local page over a labelling session (the same session
//! folder, journal and trainer as `label`), where the expert sees, adjusts and labels the
//! candidates.
//!
//! - [`listen`]: the accept loop (deadlines, a connection cap, shutdown on Ctrl-C);
//! - [`routes`]: the router and its layers; [`guard`]: same-origin writes; [`token`]: the
//!   access token;
//! - [`api`]: the JSON API; [`jobs`]: training and scoring in the background;
//! - [`images`]: display PNGs, encoded once and cached; [`assets`]: the page itself;
//! - [`state`]: what the handlers share.
//!
//! Every answer is journalled and synced before the page is told it is saved. Two tabs on one
//! session both write to the one journal, one answer at a time: none is lost, and when they
//! disagree about an image the answer that reached the server last wins.

use crate::stdout::out;
pub mod api;
pub mod assets;
pub mod guard;
pub mod images;
pub mod jobs;
pub mod listen;
pub mod routes;
pub mod state;
pub mod token;

use crate::stdout::Console;
use anomalymatch_jobs::{JobError, Report, Result};
use state::Shared;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves `shared` on `listener` until Ctrl-C or SIGTERM: loads the current window (so that every
/// request finds it), prints the page's URL with its token, and starts scoring.
pub fn run(listener: std::net::TcpListener, shared: Arc<Shared>, quiet: bool) -> Result<()> {
    Console::new(quiet).say("loading the pool window");
    shared.served().session.load_window()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| JobError::Failed(format!("cannot start the server's runtime: {e}")))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| JobError::Failed(format!("cannot read the bound address: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| JobError::Failed(format!("{addr}: {e}")))?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if addr.is_ipv6() {
        format!("[{host}]")
    } else {
        host
    };
    out!(
        "serving the session in {} at http://{host}:{}/?token={}",
        shared.dir.display(),
        addr.port(),
        shared.token
    );
    let _ = std::io::stdout().flush();
    jobs::start(&shared, jobs::Job::Score).map_err(JobError::Failed)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| JobError::Failed(format!("{addr}: {e}")))?;
        listen::serve(listener, routes::router(shared)).await;
        Ok(())
    })
}
