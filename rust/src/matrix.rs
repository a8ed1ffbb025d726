//! A borrowed row-major matrix view.

use crate::error::{Error, Result};

/// Row-major `rows x cols` view over a slice (`f32` vectors, or `i64`
/// neighbour indices).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T = f32> {
    data: &'a [T],
    rows: usize,
    cols: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// Wrap `data` as a `rows x cols` row-major matrix; `arg` names it in errors.
    pub fn new(data: &'a [T], rows: usize, cols: usize, arg: &'static str) -> Result<Self> {
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
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows `start..end` as a new view.
    pub fn slice_rows(&self, start: usize, end: usize) -> MatRef<'a, T> {
        MatRef {
            data: &self.data[start * self.cols..end * self.cols],
            rows: end - start,
            cols: self.cols,
        }
    }
}

/// Check that `rows` lies in `0..total` and that each output `(name, len)`
/// holds `per_row` values per row of `rows` (the outputs of one block of rows).
pub(crate) fn check_block(
    rows: &std::ops::Range<usize>,
    total: usize,
    per_row: usize,
    outs: &[(&'static str, usize)],
) -> Result<()> {
    if rows.start > rows.end || rows.end > total {
        return Err(Error::invalid(
            "rows",
            format!("{}..{} is not a range of 0..{total}", rows.start, rows.end),
        ));
    }
    let want = rows.len().checked_mul(per_row);
    if let Some(&(arg, len)) = outs.iter().find(|o| Some(o.1) != want) {
        return Err(Error::invalid(
            arg,
            format!("has {len} values, not {} x {per_row}", rows.len()),
        ));
    }
    Ok(())
}
