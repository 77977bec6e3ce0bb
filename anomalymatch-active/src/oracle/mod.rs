//! Oracles: who labels the queried items.

mod file;
mod simulated;
mod terminal;

pub use file::FileOracle;
pub use simulated::SimulatedExpert;
pub use terminal::TerminalOracle;
