use crate::{assert_encoded_pattern, drain, fixture, loader, names};
use anomalymatch_core::{ChannelMode, ImagePayload, ImageSource};
use anomalymatch_io::ZipSource;

#[test]
fn zip_lists_image_members_by_name_and_counts_the_rest() {
    let source = ZipSource::open(fixture("zip/images.zip")).unwrap();
    assert_eq!(
        source.names().collect::<Vec<_>>(),
        [
            "a.png",
            "bad.png",
            "sub/b.png",
            "sub/d.tif",
            "sub/deeper/c.jpg",
            "upper.PNG"
        ]
    );
    assert_eq!(source.len_hint(), Some(6));
    // notes.txt and the macOS resource fork; the folder entry is not counted.
    assert_eq!(source.skipped(), 2);
}

#[test]
fn zip_reads_members_in_chunks_and_rewinds() {
    let path = fixture("zip/images.zip");
    let mut source = ZipSource::open(&path).unwrap();
    let first = source.next_chunk(4).unwrap();
    assert_eq!(
        names(&first),
        ["a.png", "bad.png", "sub/b.png", "sub/d.tif"]
    );
    assert_eq!(first[0].origin, format!("{}:a.png", path.display()));
    assert_encoded_pattern(&first[0].payload, 0, false);
    assert_encoded_pattern(&first[2].payload, 1, false);
    assert_encoded_pattern(&first[3].payload, 3, false);
    let rest = drain(&mut source, 4);
    assert_eq!(names(&rest), ["sub/deeper/c.jpg", "upper.PNG"]);
    assert_encoded_pattern(&rest[0].payload, 2, true);
    assert_encoded_pattern(&rest[1].payload, 4, false);
    source.rewind().unwrap();
    let again = drain(&mut source, 100);
    assert_eq!(again.len(), 6);
    assert_eq!(again[0].payload, first[0].payload);
}

#[test]
fn zip_member_that_is_not_an_image_is_counted_and_named_by_the_loader() {
    let path = fixture("zip/images.zip");
    let mut source = ZipSource::open(&path).unwrap();
    let loaded = loader(8, ChannelMode::Rgb)
        .load_all(&mut source, false)
        .unwrap();
    assert_eq!(loaded.report.loaded, 5);
    assert_eq!(
        loaded.names,
        [
            "a.png",
            "sub/b.png",
            "sub/d.tif",
            "sub/deeper/c.jpg",
            "upper.PNG"
        ]
    );
    let failed = &loaded.report.failed;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].name, "bad.png");
    assert_eq!(failed[0].origin, format!("{}:bad.png", path.display()));
    // The source itself says what is wrong, naming the member.
    let prefix = format!(
        "{}:bad.png is not a JPEG, PNG or TIFF file (17 bytes starting 74 68",
        path.display()
    );
    assert!(
        failed[0].message.starts_with(&prefix),
        "{}",
        failed[0].message
    );
    source.rewind().unwrap();
    let items = source.next_chunk(2).unwrap();
    assert!(matches!(items[1].payload, ImagePayload::Unreadable(_)));
}

#[test]
fn zip_corrupt_or_missing_archives_are_errors_naming_the_file() {
    for name in ["zip/truncated.zip", "zip/not_zip.zip"] {
        let e = ZipSource::open(fixture(name)).unwrap_err();
        let err = e.to_string();
        assert!(
            err.contains(name) && err.contains("not a readable zip archive"),
            "{err}"
        );
        // The zip reader's own error stays underneath, also once seen as a core error.
        let core = anomalymatch_core::Error::from(e);
        let cause = std::error::Error::source(&core);
        assert!(
            cause.is_some_and(|c| c.is::<zip::result::ZipError>()),
            "{cause:?}"
        );
    }
    let err = ZipSource::open(fixture("zip/missing.zip"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("zip/missing.zip"), "{err}");
}
