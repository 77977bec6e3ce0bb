//! Presets: named starting points of the configuration. `recommended` is the defaults
//! themselves; `original` sets the keys that differ back to the original AnomalyMatch's
//! settings, for its published protocol. A configuration file and the flags apply on top of
//! either, so a preset never hides a key the user set.

use serde::{Deserialize, Serialize};

/// A named starting point: key `preset`, flag `--preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The defaults: the settings measured best on the GZ1-merger protocol (README, "Results").
    #[default]
    Recommended,
    /// The original AnomalyMatch's settings, for comparison with its published figures.
    Original,
}

/// The keys `original` changes, with the original's values.
const ORIGINAL: &str = r#"
[data]
crop = 1.0
"#;

impl Preset {
    /// The keys this preset sets over the defaults.
    pub fn table(self) -> toml::Table {
        match self {
            Preset::Recommended => toml::Table::new(),
            // A constant of this file: a test parses it.
            Preset::Original => ORIGINAL.parse().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_original_preset_changes_only_keys_that_exist_and_differ() {
        let table: toml::Table = ORIGINAL.parse().unwrap();
        assert!(!table.is_empty());
        let original = Config::deserialize(toml::Value::Table(table.clone())).unwrap();
        assert_ne!(original, Config::default());
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &table {
            for (key, value) in keys.as_table().unwrap() {
                assert_ne!(
                    Some(value),
                    defaults[section].get(key),
                    "{section}.{key} is already the default"
                );
            }
        }
    }
}
