//! The accept loop. Each connection is served by hyper with a deadline on request heads, so a
//! client that trickles its head (or idles between requests) is dropped; at most
//! [`MAX_CONNECTIONS`] are open at once, and any beyond are closed on arrival, so that idle
//! sockets cannot use up the process's file descriptors and lock the expert out. Ctrl-C (or
//! SIGTERM) stops accepting, lets open requests finish for a moment, and ends the rest, event
//! streams included.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Most connections served at once; the page itself uses a handful.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's head, and how long a kept-alive connection
/// may wait for its next request.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open requests get to finish once the server is asked to stop.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// Serves `router` on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stopping, _) = watch::channel(false);
    let mut connections = JoinSet::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors or a connection reset before it was taken:
                    // wait a little rather than spin, and go on.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue; // over the cap: `stream` is dropped, which closes it
                };
                let service = TowerToHyperService::new(router.clone());
                let mut stopped = stopping.subscribe();
                connections.spawn(async move {
                    let _slot = slot;
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT);
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        // The flag only ever turns true: any change is the stop.
                        _ = stopped.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    let _ = stopping.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    // Event streams never end by themselves: what is still open after the grace is dropped
    // with the set.
    let _ = tokio::time::timeout(STOP_GRACE, drain).await;
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
