use crate::{drain, fixture, loader, names};
use anomalymatch_core::stretch::zscale_limits;
use anomalymatch_core::{ChannelMode, ImagePayload, ImageSource, SourceImage, Stretch};
use anomalymatch_io::{FitsFileSource, FitsFolderSource};
use serde_json::Value;

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("fits/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Checks an array payload against what astropy read (`null` for NaN).
fn assert_as_astropy(item: &SourceImage, reference: &Value) {
    let ImagePayload::Array {
        data,
        channels,
        height,
        width,
    } = &item.payload
    else {
        panic!("{}: expected an array, got {:?}", item.name, item.payload)
    };
    let shape: Vec<usize> = reference["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let want_shape = match shape.as_slice() {
        [h, w] => (1, *h, *w),
        [c, h, w] => (*c, *h, *w),
        other => panic!("shape {other:?}"),
    };
    assert_eq!((*channels, *height, *width), want_shape, "{}", item.name);
    let values = reference["values"].as_array().unwrap();
    assert_eq!(data.len(), values.len());
    for (k, (got, want)) in data.iter().zip(values).enumerate() {
        match want.as_f64() {
            None => assert!(got.is_nan(), "{} [{k}]: {got} should be blank", item.name),
            Some(want) => {
                let tolerance = 1e-6 * want.abs().max(1.0);
                assert!(
                    (f64::from(*got) - want).abs() <= tolerance,
                    "{} [{k}]: {got} vs {want}",
                    item.name
                );
            }
        }
    }
}

const FOLDER: [&str; 15] = [
    "b16_scaled.fits",
    "b16_unsigned.fits",
    "b32_blank.fits",
    "b8.fits",
    "bad_bitpix.fits",
    "bm32_nan.fits",
    "bm64.fits",
    "cube3.fits",
    "cube5.fits",
    "ext_only.fits",
    "gz.fits.gz",
    "naxis_mismatch.fits",
    "not_fits.fits",
    "truncated_data.fits",
    "truncated_header.fits",
];

#[test]
fn fits_folder_reads_every_bitpix_as_astropy_does() {
    let mut source = FitsFolderSource::open(fixture("fits/folder")).unwrap();
    assert_eq!(source.names(), FOLDER);
    assert_eq!(source.len_hint(), Some(15));
    let items = drain(&mut source, 4);
    assert_eq!(names(&items), FOLDER);
    let expected = expected();
    let mut checked = 0;
    for item in &items {
        if let Some(reference) = expected.get(&item.name) {
            assert_as_astropy(item, reference);
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
    // NaN is not equal to itself, so compare what is printed.
    source.rewind().unwrap();
    let again = source.next_chunk(1).unwrap();
    assert_eq!(format!("{:?}", again[0]), format!("{:?}", items[0]));
}

#[test]
fn fits_bad_files_in_a_folder_are_unreadable_naming_the_hdu() {
    let root = fixture("fits/folder");
    let mut source = FitsFolderSource::open(&root).unwrap();
    let items = drain(&mut source, 100);
    let message = |name: &str| match &items.iter().find(|i| i.name == name).unwrap().payload {
        ImagePayload::Unreadable(message) => message.clone(),
        other => panic!("{name}: {other:?}"),
    };
    for (name, words) in [
        (
            "bad_bitpix.fits",
            "HDU 0: BITPIX 24 is not one of 8, 16, 32, 64, -32, -64",
        ),
        (
            "naxis_mismatch.fits",
            "HDU 0: NAXIS = 3 but NAXIS3 is missing",
        ),
        ("not_fits.fits", "HDU 0: not a FITS file"),
        ("truncated_data.fits", "HDU 0: data truncated"),
        ("truncated_header.fits", "HDU 0: header truncated"),
    ] {
        let message = message(name);
        assert!(message.contains(words), "{name}: {message}");
    }
    // The loader counts and names them; the good cutouts load.
    source.rewind().unwrap();
    let loaded = loader(8, ChannelMode::Keep(1))
        .load_all(&mut source, false)
        .unwrap();
    assert_eq!(loaded.report.loaded, 10);
    assert_eq!(loaded.report.failed.len(), 5);
    assert_eq!(
        loaded.report.failed[0].origin,
        root.join("bad_bitpix.fits").display().to_string()
    );
}

#[test]
fn fits_multi_extension_file_gives_one_cutout_per_image_hdu() {
    let path = fixture("fits/mef.fits");
    let mut source = FitsFileSource::open(&path).unwrap();
    // EXTNAME where unique (OBJ_A is used twice), else file[index]; the table is skipped.
    let expected_names = [
        "mef.fits[1]",
        "obj_b",
        "mef.fits[4]",
        "SPECTRUM",
        "mef.fits[6]",
    ];
    assert_eq!(source.names().collect::<Vec<_>>(), expected_names);
    assert_eq!(source.skipped(), 1);
    assert_eq!(source.len_hint(), Some(5));
    let items = drain(&mut source, 2);
    assert_eq!(names(&items), expected_names);
    let expected = expected();
    for (item, index) in items.iter().zip([1, 3, 4, 5, 6]) {
        assert_eq!(item.origin, format!("{}[{index}]", path.display()));
        if index == 5 {
            let ImagePayload::Unreadable(message) = &item.payload else {
                panic!("a 1-D HDU is not a cutout")
            };
            assert!(message.contains("HDU 5: 1-D data"), "{message}");
        } else {
            assert_as_astropy(item, &expected[format!("mef.fits[{index}]")]);
        }
    }
    source.rewind().unwrap();
    assert_eq!(
        format!("{:?}", drain(&mut source, 10)),
        format!("{items:?}")
    );
}

#[test]
fn fits_truncated_multi_extension_file_keeps_its_good_hdus() {
    let mut source = FitsFileSource::open(fixture("fits/mef_truncated.fits")).unwrap();
    let items = drain(&mut source, 10);
    assert_eq!(items.len(), 5);
    let ImagePayload::Unreadable(message) = &items[4].payload else {
        panic!("the last HDU is cut short")
    };
    assert!(message.contains("HDU 6: data truncated"), "{message}");
    assert_as_astropy(&items[1], &expected()["mef.fits[3]"]);
}

#[test]
fn fits_single_file_with_a_broken_header_is_an_error_naming_file_and_hdu() {
    for (name, words) in [
        ("bad_bitpix.fits", "HDU 0: BITPIX 24"),
        (
            "naxis_mismatch.fits",
            "HDU 0: NAXIS = 3 but NAXIS3 is missing",
        ),
        ("truncated_header.fits", "HDU 0: header truncated"),
        ("not_fits.fits", "HDU 0: not a FITS file"),
    ] {
        let err = FitsFileSource::open(fixture(&format!("fits/folder/{name}"))).unwrap_err();
        let err = err.to_string();
        assert!(err.contains(name) && err.contains(words), "{err}");
    }
    // A file with one image is named by its file name, compressed or not.
    for name in ["b8.fits", "gz.fits.gz", "ext_only.fits"] {
        let mut source = FitsFileSource::open(fixture(&format!("fits/folder/{name}"))).unwrap();
        let items = drain(&mut source, 1);
        assert_eq!(names(&items), [name]);
        assert_as_astropy(&items[0], &expected()[name]);
    }
}

#[test]
fn stretch_limits_match_numpy_and_astropy() {
    let mut source = FitsFileSource::open(fixture("fits/stretch_ref.fits")).unwrap();
    let item = source.next_chunk(1).unwrap().remove(0);
    let ImagePayload::Array { data, .. } = &item.payload else {
        panic!("{:?}", item.payload)
    };
    let reference = &expected()["stretch_ref.fits"];
    let number = |key: &str| reference[key].as_f64().unwrap();
    let close = |got: (f64, f64), want: (f64, f64), tolerance: f64| {
        assert!(
            (got.0 - want.0).abs() <= tolerance && (got.1 - want.1).abs() <= tolerance,
            "{got:?} vs {want:?}"
        );
    };
    close(
        Stretch::MinMax.limits(data).unwrap(),
        (number("min"), number("max")),
        1e-3,
    );
    close(
        Stretch::default().limits(data).unwrap(),
        (number("p0_5"), number("p99_5")),
        1e-3,
    );
    let p = Stretch::Percentile {
        low: 2.0,
        high: 98.0,
    };
    close(p.limits(data).unwrap(), (number("p2"), number("p98")), 1e-3);
    // zscale: the same algorithm as astropy's, written independently; small differences in
    // how rejected samples are grown move the limits by a fraction of the range.
    let astropy = reference["zscale"].as_array().unwrap();
    let want = (astropy[0].as_f64().unwrap(), astropy[1].as_f64().unwrap());
    let got = zscale_limits(data, 0.25).unwrap();
    close(got, want, 0.02 * (want.1 - want.0));
    // Every stretch gives pixels in [0, 1] with the blank pixels at 0.
    for stretch in [
        Stretch::MinMax,
        Stretch::default(),
        Stretch::Asinh { softening: 0.1 },
        Stretch::Log,
        Stretch::ZScale { contrast: 0.25 },
    ] {
        let mut out = vec![0.0; data.len()];
        stretch.apply(data, &mut out);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)), "{stretch:?}");
        assert_eq!(out[10 * 64 + 11], 0.0, "{stretch:?}: blank pixel");
    }
}
