//! The three states an image can be in, and how they are spelled in label files.

use std::fmt;
use std::str::FromStr;

/// What is known about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Label {
    /// Confirmed as ordinary (class index 0).
    Normal,
    /// Confirmed as an object of interest (class index 1).
    Anomaly,
    /// Not labelled (yet).
    #[default]
    Unknown,
}

impl Label {
    /// Classes a classifier tells apart: normal (index 0) and anomaly (index 1). Every network
    /// head and probability row has this many outputs.
    pub const CLASSES: usize = 2;

    /// The class index the classifier is trained on: 0 for normal, 1 for anomaly, `None` when unknown.
    pub fn class_index(self) -> Option<u32> {
        match self {
            Label::Normal => Some(0),
            Label::Anomaly => Some(1),
            Label::Unknown => None,
        }
    }

    /// The label for a class index; indices other than 0 and 1 are unknown.
    pub fn from_class_index(index: u32) -> Label {
        match index {
            0 => Label::Normal,
            1 => Label::Anomaly,
            _ => Label::Unknown,
        }
    }

    /// True for `Normal` and `Anomaly`.
    pub fn is_known(self) -> bool {
        self != Label::Unknown
    }

    /// The spelling used in the original's `labeled_data.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Normal => "normal",
            Label::Anomaly => "anomaly",
            Label::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `normal`, `anomaly` or `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown label {0:?} (expected \"normal\", \"anomaly\" or \"unknown\")")]
pub struct ParseLabelError(pub String);

impl FromStr for Label {
    type Err = ParseLabelError;

    /// Case-insensitive and tolerant of surrounding spaces, because label files are often hand-edited.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Label::Normal),
            "anomaly" => Ok(Label::Anomaly),
            "unknown" | "" => Ok(Label::Unknown),
            _ => Err(ParseLabelError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for l in [Label::Normal, Label::Anomaly, Label::Unknown] {
            assert_eq!(l.as_str().parse::<Label>(), Ok(l));
        }
        assert_eq!(" Anomaly ".parse::<Label>(), Ok(Label::Anomaly));
        assert!("merger".parse::<Label>().is_err());
    }

    #[test]
    fn class_indices() {
        assert_eq!(Label::Anomaly.class_index(), Some(1));
        assert_eq!(Label::from_class_index(0), Label::Normal);
        assert_eq!(Label::from_class_index(7), Label::Unknown);
        assert_eq!(Label::Unknown.class_index(), None);
    }
}
