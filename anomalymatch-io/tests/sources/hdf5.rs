use crate::{assert_encoded_pattern, drain, fixture, loader, names, pattern};
use anomalymatch_core::{ChannelMode, ImagePayload, ImageSource};
use anomalymatch_io::{CubeLayout, Hdf5Options, Hdf5Source};

const ENCODED_NAMES: [&str; 5] = [
    "img_0.png",
    "img_1.png",
    "galaxié_2.png",
    "img_3.png",
    "img_4.jpg",
];

fn open(name: &str) -> Hdf5Source {
    Hdf5Source::open(fixture(name), &Hdf5Options::default()).unwrap()
}

fn open_err(name: &str, options: &Hdf5Options) -> String {
    Hdf5Source::open(fixture(name), options)
        .unwrap_err()
        .to_string()
}

#[test]
fn hdf5_encoded_images_in_the_original_layout() {
    // gzip-chunked vlen images and vlen UTF-8 names (the original's prepare_datasets.py), and
    // the same grown by appends in the newest file format.
    for file in ["h5/encoded_gzip.h5", "h5/encoded_latest.h5"] {
        let mut source = open(file);
        assert!(source.is_encoded() && source.layout().is_none());
        assert_eq!(source.len_hint(), Some(5));
        assert_eq!(source.names(), ENCODED_NAMES);
        // Chunks of 3 cross the file's chunks of 2.
        let items = drain(&mut source, 3);
        assert_eq!(names(&items), ENCODED_NAMES);
        for (i, item) in items.iter().enumerate().take(3) {
            assert_encoded_pattern(&item.payload, i, false);
        }
        let ImagePayload::Unreadable(message) = &items[3].payload else {
            panic!("element 3 is not an image: {:?}", items[3].payload)
        };
        let origin = format!("{}:images[3]", fixture(file).display());
        let prefix = format!("{origin} is not a JPEG, PNG or TIFF file");
        assert!(message.starts_with(&prefix), "{message}");
        assert_encoded_pattern(&items[4].payload, 4, true);
        assert_eq!(
            items[2].origin,
            format!("{}:images[2]", fixture(file).display())
        );
        source.rewind().unwrap();
        assert_eq!(source.next_chunk(1).unwrap()[0].payload, items[0].payload);
    }
}

#[test]
fn hdf5_bad_element_is_counted_and_named_by_the_loader() {
    let path = fixture("h5/encoded_gzip.h5");
    let mut source = Hdf5Source::open(&path, &Hdf5Options::default()).unwrap();
    let loaded = loader(6, ChannelMode::Rgb)
        .load_all(&mut source, false)
        .unwrap();
    assert_eq!(loaded.report.loaded, 4);
    assert_eq!(loaded.report.failed.len(), 1);
    assert_eq!(loaded.report.failed[0].name, "img_3.png");
    assert_eq!(
        loaded.report.failed[0].origin,
        format!("{}:images[3]", path.display())
    );
}

#[test]
fn hdf5_plain_layout_with_fixed_length_names() {
    // Contiguous vlen images and numpy "S" names, as the original's tests write them.
    let mut source = open("h5/encoded_plain.h5");
    let items = drain(&mut source, 2);
    assert_eq!(names(&items), ["img_0.png", "img_1.png", "img_2.png"]);
    for (i, item) in items.iter().enumerate() {
        assert_encoded_pattern(&item.payload, i, false);
    }
}

/// Checks a cube's payloads against the pattern, whatever the file's axis order.
fn check_cube(file: &str, dtype: &str, bands: usize, source: &mut Hdf5Source) {
    assert_eq!(
        source.names(),
        ["cube_00", "cube_01", "cube_02", "cube_03"],
        "{file}"
    );
    let items = drain(source, 3);
    assert_eq!(items.len(), 4);
    for (i, item) in items.iter().enumerate() {
        let expected = |c, y, x| {
            let v = pattern(i, c, y, x);
            match dtype {
                "u8" => (v % 256.0) / 255.0,
                "u16" => v * 180.0 / 65535.0,
                _ => v * 0.5 - 20.0,
            }
        };
        let (values, channels, height, width) = match (&item.payload, dtype) {
            (ImagePayload::Pixels(batch), "u8" | "u16") => (
                batch.image(0).to_vec(),
                batch.channels(),
                batch.height(),
                batch.width(),
            ),
            (
                ImagePayload::Array {
                    data,
                    channels,
                    height,
                    width,
                },
                "f32",
            ) => (data.clone(), *channels, *height, *width),
            (other, _) => panic!("{file}: unexpected payload {other:?}"),
        };
        assert_eq!((channels, height, width), (bands, 6, 8), "{file}");
        for c in 0..bands {
            for y in 0..6 {
                for x in 0..8 {
                    let got = f64::from(values[(c * 6 + y) * 8 + x]);
                    if dtype == "f32" && (i, c, y, x) == (1, 0, 0, 0) {
                        assert!(got.is_nan(), "{file}: the NaN written is kept");
                        continue;
                    }
                    let want = expected(c, y, x);
                    assert!(
                        (got - want).abs() < 1e-6,
                        "{file} [{i},{c},{y},{x}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn hdf5_cubes_in_every_dtype_and_axis_order() {
    for dtype in ["u8", "u16", "f32"] {
        for (order, layout, bands) in [
            ("nhw", CubeLayout::Nhw, 1),
            ("nhwc", CubeLayout::Nhwc, 3),
            ("nchw", CubeLayout::Nchw, 3),
        ] {
            let file = format!("h5/cube_{dtype}_{order}.h5");
            // Detected...
            let mut source = open(&file);
            assert!(!source.is_encoded());
            assert_eq!(source.layout(), Some(layout), "{file}");
            check_cube(&file, dtype, bands, &mut source);
            // ...and given.
            let options = Hdf5Options {
                layout,
                ..Hdf5Options::default()
            };
            let mut source = Hdf5Source::open(fixture(&file), &options).unwrap();
            check_cube(&file, dtype, bands, &mut source);
        }
    }
}

#[test]
fn hdf5_cube_layout_must_be_given_when_ambiguous_and_must_fit() {
    let err = open_err("h5/cube_ambiguous.h5", &Hdf5Options::default());
    assert!(
        err.contains("cube_ambiguous.h5:images") && err.contains("nhwc or nchw"),
        "{err}"
    );
    let options = Hdf5Options {
        layout: CubeLayout::Nchw,
        ..Hdf5Options::default()
    };
    let mut source = Hdf5Source::open(fixture("h5/cube_ambiguous.h5"), &options).unwrap();
    let ImagePayload::Pixels(batch) = &source.next_chunk(1).unwrap()[0].payload else {
        panic!("uint8 cubes are pixels")
    };
    assert_eq!((batch.channels(), batch.height(), batch.width()), (4, 4, 4));
    let options = Hdf5Options {
        layout: CubeLayout::Nhwc,
        ..Hdf5Options::default()
    };
    let err = open_err("h5/cube_u8_nhw.h5", &options);
    assert!(
        err.contains("cube_u8_nhw.h5:images") && err.contains("does not fit"),
        "{err}"
    );
}

#[test]
fn hdf5_bad_inputs_are_errors_naming_file_and_dataset() {
    let default = Hdf5Options::default();
    let err = open_err("h5/not_hdf5.h5", &default);
    assert!(
        err.contains("h5/not_hdf5.h5") && err.contains("not a readable HDF5 file"),
        "{err}"
    );
    let err = open_err("h5/truncated.h5", &default);
    assert!(err.contains("h5/truncated.h5"), "{err}");
    let wrong = Hdf5Options {
        images_dataset: "cutouts".to_string(),
        ..Hdf5Options::default()
    };
    let err = open_err("h5/encoded_gzip.h5", &wrong);
    assert!(err.contains("encoded_gzip.h5:cutouts"), "{err}");
    assert!(
        err.contains("filenames") && err.contains("images"),
        "lists what is there: {err}"
    );
    let wrong = Hdf5Options {
        names_dataset: "names".to_string(),
        ..Hdf5Options::default()
    };
    assert!(open_err("h5/encoded_gzip.h5", &wrong).contains("encoded_gzip.h5:names"));
    let err = open_err("h5/names_mismatch.h5", &default);
    assert!(
        err.contains("names_mismatch.h5:filenames") && err.contains("2 names for 3 images"),
        "{err}"
    );
    let err = open_err("h5/cube_int64.h5", &default);
    assert!(
        err.contains("cube_int64.h5:images") && err.contains("int64"),
        "{err}"
    );
    let err = open_err("h5/missing.h5", &default);
    assert!(err.contains("h5/missing.h5"), "{err}");
    let empty = Hdf5Options {
        images_dataset: String::new(),
        ..Hdf5Options::default()
    };
    let err = open_err("h5/encoded_gzip.h5", &empty);
    assert!(err.contains("hdf5.images_dataset"), "{err}");
}
