//! The configuration idiom every crate follows: a section of plain parameters (serde data, one
//! TOML table), [`Check::check`] that validates it into a [`Checked`] value naming every bad
//! key, and, for sections that make a component, [`Build`] on the checked value.
//!
//! Each crate owns its sections: core the data ([`crate::loader::DataConfig`]), training
//! ([`crate::train_config::TrainConfig`]) and scoring ([`crate::score::ScoreConfig`]) ones;
//! the models, augmentation and active-learning crates theirs. An application only assembles
//! them into one file.

use crate::error::{Error, Result};
use std::ops::Deref;

/// A section of parameters that can check its own fields.
pub trait Check: Sized {
    /// Appends one message per bad field, each starting with the field's dotted key under
    /// `prefix` (e.g. `train.lr: must be > 0, got -1`).
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>);

    /// Validates into a [`Checked`] value, or returns every problem at once.
    fn check(self) -> Result<Checked<Self>> {
        self.check_at("")
    }

    /// Like [`Check::check`], naming the fields under `prefix` (the section's key when it is
    /// checked on its own, e.g. `hdf5`).
    fn check_at(self, prefix: &str) -> Result<Checked<Self>> {
        let mut errors = Vec::new();
        self.check_into(prefix, &mut errors);
        if errors.is_empty() {
            Ok(Checked(self))
        } else {
            Err(Error::Config(errors))
        }
    }
}

/// A value whose fields have been checked; only [`Check::check`] makes one, so code that
/// receives it need not check again.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(T);

impl<T> Checked<T> {
    /// Gives back the plain value (to edit it and check it again).
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A checked section that makes a component (a loader, a model, an augmenter, a strategy, a
/// trainer) from `I`, what building needs besides the settings (a device, a model, a seed):
/// call [`Checked::build`].
pub trait Build<I>: Check {
    /// The component.
    type Output;
    /// The owning crate's error.
    type Error;

    /// Makes the component from checked settings.
    fn build_checked(
        config: &Checked<Self>,
        input: I,
    ) -> std::result::Result<Self::Output, Self::Error>;
}

impl<T> Checked<T> {
    /// Makes the component these settings describe.
    pub fn build<I>(&self, input: I) -> std::result::Result<T::Output, T::Error>
    where
        T: Build<I>,
    {
        T::build_checked(self, input)
    }
}

/// The dotted key of `name` under `prefix` (`""` at the top level).
pub fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Records an error unless `low <= value <= high` (NaN fails).
pub fn check_range<T>(errors: &mut Vec<String>, key: String, value: T, low: T, high: T)
where
    T: PartialOrd + std::fmt::Display,
{
    if !(low <= value && value <= high) {
        errors.push(format!("{key}: must be in [{low}, {high}], got {value}"));
    }
}

/// Records an error unless `low <= value < high` (NaN fails).
pub fn check_below<T>(errors: &mut Vec<String>, key: String, value: T, low: T, high: T)
where
    T: PartialOrd + std::fmt::Display,
{
    if !(low <= value && value < high) {
        errors.push(format!("{key}: must be in [{low}, {high}), got {value}"));
    }
}

/// Records an error unless `value` is finite and greater than zero.
pub fn check_positive(errors: &mut Vec<String>, key: String, value: f64) {
    if !(value > 0.0 && value.is_finite()) {
        errors.push(format!("{key}: must be > 0, got {value}"));
    }
}

/// Records an error when a path setting is empty (`--set data.images=`), which would otherwise
/// surface later as a nameless "No such file or directory".
pub fn check_path(errors: &mut Vec<String>, key: String, path: Option<&std::path::Path>) {
    if path.is_some_and(|p| p.as_os_str().is_empty()) {
        errors.push(format!("{key}: is empty; name a file or folder"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair {
        a: f64,
        b: usize,
    }

    impl Check for Pair {
        fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
            check_range(errors, key(prefix, "a"), self.a, 0.0, 1.0);
            check_below(errors, key(prefix, "b"), self.b, 1, 10);
        }
    }

    #[test]
    fn every_bad_field_is_named_once() {
        assert!(Pair { a: 0.5, b: 3 }.check().is_ok());
        let Err(Error::Config(msgs)) = Pair { a: f64::NAN, b: 10 }.check() else {
            panic!("expected a config error")
        };
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("a: must be in [0, 1]"), "{msgs:?}");
        assert!(msgs[1].starts_with("b: must be in [1, 10)"), "{msgs:?}");
        let mut nested = Vec::new();
        Pair { a: 2.0, b: 1 }.check_into("outer", &mut nested);
        assert_eq!(nested, ["outer.a: must be in [0, 1], got 2"]);
    }
}
