//! Oracles: who labels the queried items.

mod simulated;
mod terminal;

pub use simulated::SimulatedExpert;
pub use terminal::TerminalOracle;
