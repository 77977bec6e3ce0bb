//! anomalymatch-augment (work in progress).
