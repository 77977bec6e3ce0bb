//! anomalymatch-active (work in progress).
