//! Active learning for AnomalyMatch: query strategies that choose what an expert should look
//! at, oracles that give the labels (simulated, from a file, or a person at a terminal), and
//! the durable session loop train -> score -> query -> label -> retrain.

pub mod config;
pub mod error;
pub mod journal;
pub mod oracle;
pub mod session;
pub mod strategy;

pub use config::{ActiveConfig, OracleSpec};
pub use error::{ActiveError, Result};
pub use oracle::{FileOracle, SimulatedExpert, TerminalOracle};
pub use session::{Session, SessionConfig, SessionEnd, SessionObserver};
pub use strategy::by_name;
