use crate::{drain, fixture};
use anomalymatch_core::Check;
use anomalymatch_core::ImageSource;
use anomalymatch_io::{CubeLayout, SourceFormat, SourceOptions, open_source};

fn open_len(path: &std::path::Path, options: &SourceOptions) -> usize {
    let mut source: Box<dyn ImageSource> = open_source(path, options).unwrap();
    let hint = source.len_hint().unwrap();
    assert_eq!(drain(source.as_mut(), 7).len(), hint, "{}", path.display());
    hint
}

#[test]
fn open_source_picks_the_source_by_path() {
    let auto = SourceOptions::default();
    assert_eq!(open_len(&fixture("zip/images.zip"), &auto), 6);
    assert_eq!(open_len(&fixture("h5/encoded_gzip.h5"), &auto), 5);
    assert_eq!(open_len(&fixture("fits/mef.fits"), &auto), 5);
    assert_eq!(open_len(&fixture("fits/folder/gz.fits.gz"), &auto), 1);
    assert_eq!(open_len(&fixture("fits/folder"), &auto), 15);

    let dir = tempfile::tempdir().unwrap();
    image::RgbImage::new(4, 4)
        .save(dir.path().join("a.png"))
        .unwrap();
    assert_eq!(open_len(dir.path(), &auto), 1);
    std::fs::copy(fixture("fits/folder/b8.fits"), dir.path().join("b.fits")).unwrap();
    let err = open_source(dir.path(), &auto).err().unwrap().to_string();
    assert!(err.contains("1 image and 1 FITS files"), "{err}");
    let fits_only = SourceOptions {
        format: SourceFormat::FitsFolder,
        ..SourceOptions::default()
    };
    assert_eq!(open_len(dir.path(), &fits_only), 1);

    let err = open_source(fixture("fits/expected.json"), &auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("expected.json") && err.contains("unknown kind of file"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let err = open_source(empty.path(), &auto).err().unwrap().to_string();
    assert!(err.contains("no image"), "{err}");
    let zip = SourceOptions {
        format: SourceFormat::Zip,
        ..SourceOptions::default()
    };
    let err = open_source(fixture("fits/folder"), &zip)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("needs a file"), "{err}");
    let err = open_source(fixture("nothing/here.zip"), &auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nothing/here.zip"), "{err}");
}

#[test]
fn source_options_are_a_checked_config_section() {
    let options: SourceOptions = toml::from_str(
        "format = \"hdf5\"\n[hdf5]\nimages_dataset = \"cutouts\"\nlayout = \"nchw\"\n",
    )
    .unwrap();
    assert_eq!(options.format, SourceFormat::Hdf5);
    assert_eq!(options.hdf5.images_dataset, "cutouts");
    assert_eq!(options.hdf5.names_dataset, "filenames");
    assert_eq!(options.hdf5.layout, CubeLayout::Nchw);
    let text = toml::to_string(&options).unwrap();
    assert_eq!(toml::from_str::<SourceOptions>(&text).unwrap(), options);
    assert!(toml::from_str::<SourceOptions>("fromat = \"zip\"").is_err());
    let mut bad = SourceOptions::default();
    bad.hdf5.names_dataset = "images".to_string();
    let mut errors = Vec::new();
    bad.check_into("source", &mut errors);
    assert!(
        errors[0].starts_with("source.hdf5.names_dataset:"),
        "{errors:?}"
    );
    assert!(bad.check().is_err());
}
