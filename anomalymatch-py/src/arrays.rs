//! numpy arrays of images, read as cubes: `(N, H, W)`, `(N, H, W, C)` or `(N, C, H, W)`, in
//! uint8 or uint16 (pixels: value / type maximum) or float32 or float64 (physical values,
//! stretched as the checkpoint says), as the command line reads an HDF5 cube. Contiguous
//! arrays are read in place; others are copied once.

use anomalymatch_io::{CubeLayout, CubeSource, CubeValues};
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// One dtype's values: the array itself where contiguous, else a row-major copy.
enum Hold<'py, T: Element> {
    Borrowed(PyReadonlyArrayDyn<'py, T>),
    Owned(Vec<T>),
}

impl<'py, T: Element + Copy> Hold<'py, T> {
    fn of(array: &Bound<'py, PyArrayDyn<T>>) -> Hold<'py, T> {
        let readonly = array.readonly();
        if readonly.as_slice().is_ok() {
            Hold::Borrowed(readonly)
        } else {
            Hold::Owned(readonly.as_array().iter().copied().collect())
        }
    }

    fn slice(&self) -> &[T] {
        match self {
            // Checked contiguous when held.
            Hold::Borrowed(a) => a.as_slice().unwrap_or(&[]),
            Hold::Owned(v) => v,
        }
    }
}

/// The values of an array of images, by dtype.
enum Values<'py> {
    U8(Hold<'py, u8>),
    U16(Hold<'py, u16>),
    F32(Hold<'py, f32>),
}

/// An array of images held for the length of a job.
pub struct ImageArray<'py> {
    values: Values<'py>,
    shape: Vec<usize>,
}

impl<'py> ImageArray<'py> {
    /// Reads `images`; a dtype that cannot be images is a `ValueError` naming it.
    pub fn new(images: &Bound<'py, PyAny>) -> PyResult<ImageArray<'py>> {
        let values = if let Ok(a) = images.cast::<PyArrayDyn<u8>>() {
            Values::U8(Hold::of(a))
        } else if let Ok(a) = images.cast::<PyArrayDyn<u16>>() {
            Values::U16(Hold::of(a))
        } else if let Ok(a) = images.cast::<PyArrayDyn<f32>>() {
            Values::F32(Hold::of(a))
        } else if let Ok(a) = images.cast::<PyArrayDyn<f64>>() {
            let copy = a.readonly().as_array().iter().map(|&v| v as f32).collect();
            Values::F32(Hold::Owned(copy))
        } else {
            let what = match images.getattr("dtype") {
                Ok(dtype) => format!("an array of dtype {}", dtype.str()?),
                Err(_) => format!("a {}", images.get_type().name()?),
            };
            return Err(PyValueError::new_err(format!(
                "images must be a numpy array of uint8, uint16, float32 or float64, got {what}"
            )));
        };
        let shape = match &values {
            Values::U8(h) => shape_of(h),
            Values::U16(h) => shape_of(h),
            Values::F32(h) => shape_of(h),
        }
        .unwrap_or_else(|| images_shape(images));
        Ok(ImageArray { values, shape })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// The images as a source, read as `layout` (`auto`, `nhw`, `nhwc` or `nchw`); a shape
    /// that is not a cube of images is a `ValueError` saying the shapes accepted, and how many
    /// bands the model takes.
    pub fn source(&self, layout: &str, bands: usize) -> PyResult<CubeSource<'_>> {
        let layout: CubeLayout = serde_json::from_value(serde_json::Value::String(layout.into()))
            .map_err(|e| PyValueError::new_err(format!("layout: {e}")))?;
        let values = match &self.values {
            Values::U8(h) => CubeValues::U8(h.slice().into()),
            Values::U16(h) => CubeValues::U16(h.slice().into()),
            Values::F32(h) => CubeValues::F32(h.slice().into()),
        };
        CubeSource::new(values, &self.shape, layout).map_err(|message| {
            PyValueError::new_err(format!(
                "images: {message}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C = \
                 {bands} for this model"
            ))
        })
    }
}

/// The shape of a held array.
fn shape_of<T: Element>(hold: &Hold<'_, T>) -> Option<Vec<usize>> {
    match hold {
        Hold::Borrowed(a) => Some(a.shape().to_vec()),
        Hold::Owned(_) => None,
    }
}

/// The shape of an array that was copied.
fn images_shape(images: &Bound<'_, PyAny>) -> Vec<usize> {
    images
        .getattr("shape")
        .and_then(|s| s.extract::<Vec<usize>>())
        .unwrap_or_default()
}
