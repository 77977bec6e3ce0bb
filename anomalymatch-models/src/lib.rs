//! anomalymatch-models (work in progress).
