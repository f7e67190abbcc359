//! The arrays NumPy files hold, in memory: four element kinds in standard
//! (row-major) layout, and, for an array read from a file, the dtype the file
//! held (kept for messages).

use ndarray::ArrayD;

/// An array's elements, in standard (row-major) layout.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// `float32`, and `float16` widened losslessly.
    F32(ArrayD<f32>),
    /// `float64`.
    F64(ArrayD<f64>),
    /// Every integer dtype, widened to `i64`.
    Int(ArrayD<i64>),
    /// `bool`.
    Bool(ArrayD<bool>),
}

impl ArrayData {
    /// The array's shape; empty for a 0-d array.
    pub fn shape(&self) -> &[usize] {
        match self {
            ArrayData::F32(a) => a.shape(),
            ArrayData::F64(a) => a.shape(),
            ArrayData::Int(a) => a.shape(),
            ArrayData::Bool(a) => a.shape(),
        }
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements (1 for a 0-d array, 0 when an axis is 0).
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy name of the in-memory element type: `"float32"`, `"float64"`,
    /// `"int64"` or `"bool"` (what [`write_npy`](super::write_npy) writes). The dtype a file held
    /// is [`NpyArray::dtype`].
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
            ArrayData::Int(_) => "int64",
            ArrayData::Bool(_) => "bool",
        }
    }
}

impl From<ArrayD<f32>> for ArrayData {
    fn from(a: ArrayD<f32>) -> Self {
        ArrayData::F32(a)
    }
}

impl From<ArrayD<f64>> for ArrayData {
    fn from(a: ArrayD<f64>) -> Self {
        ArrayData::F64(a)
    }
}

impl From<ArrayD<i64>> for ArrayData {
    fn from(a: ArrayD<i64>) -> Self {
        ArrayData::Int(a)
    }
}

impl From<ArrayD<bool>> for ArrayData {
    fn from(a: ArrayD<bool>) -> Self {
        ArrayData::Bool(a)
    }
}

/// An array as read from a file: its data, and the dtype the file held.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The elements, widened to one of the four in-memory kinds.
    pub data: ArrayData,
    /// The file's dtype by its NumPy name, e.g. `"float32"`, `"int32"`,
    /// `"uint8"`, `"float16"`, `"bool"`; a big-endian multi-byte dtype reads
    /// e.g. `"float64 (big-endian)"`.
    pub dtype: String,
}

impl NpyArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The data, dropping the file's dtype name.
    pub fn into_data(self) -> ArrayData {
        self.data
    }
}
