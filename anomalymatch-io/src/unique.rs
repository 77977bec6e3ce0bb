//! Names that label files can tell apart: an HDF5 file may give two rows one name, and one label
//! row would then label both.

use anomalymatch_core::printable;
use std::collections::{HashMap, HashSet};

/// Renames every copy of a name that occurs more than once in `items` (name, row in the file)
/// to `name[place]`, as FITS HDUs without a unique `EXTNAME` are named, so that each copy can
/// be labelled on its own. Returns a note for the user saying what was renamed, or `None` when
/// every name was unique; `Err` names a clash the renaming itself made.
pub(crate) fn make_unique(
    items: &mut [(String, usize)],
    what: &str,
) -> Result<Option<String>, String> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for (name, _) in items.iter() {
        *uses.entry(name).or_default() += 1;
    }
    let mut repeated: Vec<String> = uses
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(name, _)| name.to_string())
        .collect();
    repeated.sort();
    if repeated.is_empty() {
        return Ok(None);
    }
    let mut copies = 0;
    for (name, place) in items.iter_mut() {
        if repeated.binary_search(name).is_ok() {
            *name = format!("{name}[{place}]");
            copies += 1;
        }
    }
    let mut seen = HashSet::with_capacity(items.len());
    for (name, _) in items.iter() {
        if !seen.insert(name.as_str()) {
            return Err(format!(
                "{what} name {:?} occurs twice even after repeated names were made unique",
                printable(name)
            ));
        }
    }
    Ok(Some(format!(
        "{} {what} name(s) occur more than once (first: {:?}); their {copies} copies are named \
         NAME[i] after their place i in the file, and a label row for NAME labels none of them",
        repeated.len(),
        printable(&repeated[0])
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(names: &[&str]) -> Vec<(String, usize)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect()
    }

    #[test]
    fn only_repeated_names_are_renamed_and_the_note_counts_them() {
        let mut list = items(&["a.png", "b.png", "a.png", "c.png", "a.png"]);
        let note = make_unique(&mut list, "member").unwrap().unwrap();
        let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["a.png[0]", "b.png", "a.png[2]", "c.png", "a.png[4]"]
        );
        assert!(note.starts_with("1 member name(s)"), "{note}");
        assert!(note.contains("3 copies"), "{note}");
        let mut unique = items(&["a", "b"]);
        assert_eq!(make_unique(&mut unique, "member"), Ok(None));
    }

    #[test]
    fn a_clash_made_by_renaming_is_an_error() {
        let mut list = items(&["a", "a", "a[1]"]);
        assert!(make_unique(&mut list, "row").is_err());
    }
}
