//! A borrowed row-major matrix view.

use crate::error::{Error, Result};

/// Row-major `rows x cols` view over a slice of `f32`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatRef<'a> {
    /// Wrap `data` as a `rows x cols` row-major matrix; `arg` names it in errors.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, arg: &'static str) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::invalid(
                arg,
                format!("buffer of length {} is not {rows} x {cols}", data.len()),
            ));
        }
        Ok(Self { data, rows, cols })
    }

    #[inline]
    pub fn rows(&self) -> usize {
        self.rows
    }

    #[inline]
    pub fn cols(&self) -> usize {
        self.cols
    }

    #[inline]
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows `start..end` as a new view.
    pub fn slice_rows(&self, start: usize, end: usize) -> MatRef<'a> {
        MatRef {
            data: &self.data[start * self.cols..end * self.cols],
            rows: end - start,
            cols: self.cols,
        }
    }
}

/// Error naming `arg` and the first row holding NaN or inf, if any.
pub fn check_finite(pool: &rayon::ThreadPool, m: MatRef<'_>, arg: &'static str) -> Result<()> {
    use rayon::prelude::*;
    let d = m.cols().max(1);
    let bad = pool.install(|| {
        m.data()
            .par_chunks(d * 1024)
            .enumerate()
            .find_map_first(|(c, chunk)| chunk.iter().position(|v| !v.is_finite()).map(|p| c * 1024 + p / d))
    });
    match bad {
        Some(row) => Err(Error::invalid(
            arg,
            format!("row {row} contains NaN or inf; clean the input (e.g. numpy.nan_to_num) or drop the row"),
        )),
        None => Ok(()),
    }
}
