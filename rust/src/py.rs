//! PyO3 binding: converts arrays and maps errors, then runs the core without
//! the GIL. User-facing validation lives in the Python wrappers; the core
//! checks only what it needs to stay safe (its errors become `ValueError`).
//!
//! Heavy work runs in blocks of query rows; between blocks the GIL is taken
//! back to honour Ctrl-C (`check_signals`) and to report progress to an
//! optional Python callable `progress(done_rows, total_rows)`.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;
use crate::knn::{inverse_norms, Kernel, Search};
use crate::llm::{combine_block, llm_weights_block};
use crate::matrix::MatRef;
use crate::pool::thread_pool;

create_exception!(
    _core,
    NumericalError,
    PyRuntimeError,
    "A numerical failure on valid input (e.g. a singular Gram matrix with reg=0)."
);

/// Query rows per block between two GIL re-acquisitions (at most).
const BLOCK: usize = 8192;

/// Rows per block for `n` rows: equal blocks of at most [`BLOCK`], so no small tail block
/// leaves threads idle.
fn block_rows(n: usize) -> usize {
    n.div_ceil(n.div_ceil(BLOCK).max(1)).max(1)
}

fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidInput { .. } => PyValueError::new_err(e.to_string()),
        Error::Numerical(msg) => NumericalError::new_err(msg),
        Error::Resource(msg) => PyRuntimeError::new_err(msg),
    }
}

/// A C-contiguous 2-D array as a matrix view (`TypeError` otherwise).
fn view<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>, arg: &'static str) -> PyResult<MatRef<'a, T>> {
    let shape = a.shape();
    let data = a
        .as_slice()
        .map_err(|_| PyTypeError::new_err(format!("{arg}: expected a C-contiguous {} array", a.dtype())))?;
    MatRef::new(data, shape[0], shape[1], arg).map_err(to_py)
}

fn bias_view<'a>(b: &'a Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Option<&'a [f32]>> {
    b.as_ref()
        .map(|a| {
            a.as_slice()
                .map_err(|_| PyTypeError::new_err("base_bias: expected a C-contiguous float32 array"))
        })
        .transpose()
}

/// Run `work(start, end)` without the GIL on successive blocks of `n` rows; between
/// blocks take the GIL back to honour Ctrl-C and report progress.
fn for_each_block<F>(py: Python<'_>, n: usize, progress: &Option<Py<PyAny>>, mut work: F) -> PyResult<()>
where
    F: FnMut(usize, usize) -> crate::Result<()> + Send,
{
    let block = block_rows(n);
    let mut start = 0;
    while start < n {
        let end = (start + block).min(n);
        let w = &mut work;
        py.detach(move || w(start, end)).map_err(to_py)?;
        report(py, progress, end, n)?;
        start = end;
    }
    Ok(())
}

fn report(py: Python<'_>, progress: &Option<Py<PyAny>>, done: usize, total: usize) -> PyResult<()> {
    py.check_signals()?;
    if let Some(cb) = progress {
        cb.call1(py, (done, total))?;
    }
    Ok(())
}

fn matrix2<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

/// Inverse row norms of two matrices (named `args` in errors), computed without the GIL.
fn norms(
    py: Python<'_>,
    pool: &rayon::ThreadPool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    args: [&'static str; 2],
) -> PyResult<(Vec<f32>, Vec<f32>)> {
    py.detach(|| Ok::<_, Error>((inverse_norms(pool, a, args[0])?, inverse_norms(pool, b, args[1])?)))
        .map_err(to_py)
}

type Matrix<'py, T> = Bound<'py, PyArray2<T>>;

/// Environment variable that forces an exact-kNN kernel by name.
const KERNEL_VAR: &str = "TASKSPEC_KNN_KERNEL";

/// The kernel `TASKSPEC_KNN_KERNEL` selects (unset: the CPU's best); an
/// unknown name or one this CPU cannot run is a `ValueError`.
fn env_kernel() -> PyResult<Kernel> {
    match std::env::var(KERNEL_VAR) {
        Ok(name) => Kernel::select(&name, KERNEL_VAR).map_err(to_py),
        Err(std::env::VarError::NotPresent) => Ok(Kernel::best()),
        Err(std::env::VarError::NotUnicode(v)) => Err(PyValueError::new_err(format!(
            "{KERNEL_VAR}: {v:?} is not a kernel name (not valid Unicode)"
        ))),
    }
}

/// Exact cosine kNN (see `taskspec_rs.knn`).
#[pyfunction]
#[pyo3(signature = (queries, base, k, *, base_bias=None, num_threads=None, progress=None))]
fn knn<'py>(
    py: Python<'py>,
    queries: PyReadonlyArray2<'py, f32>,
    base: PyReadonlyArray2<'py, f32>,
    k: usize,
    base_bias: Option<PyReadonlyArray1<'py, f32>>,
    num_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Matrix<'py, f32>, Matrix<'py, i64>)> {
    let bias = bias_view(&base_bias)?;
    let q = view(&queries, "queries")?;
    let b = view(&base, "base")?;
    let pool = thread_pool(num_threads).map_err(to_py)?;
    let kernel = env_kernel()?;
    let (q_inv, b_inv) = norms(py, &pool, q, b, ["queries", "base"])?;
    let search = Search::new(q, &q_inv, b, &b_inv, bias, k)
        .and_then(|s| s.with_kernel(kernel))
        .map_err(to_py)?;
    let n = q.rows();
    let mut sims = vec![0f32; n * k];
    let mut idx = vec![0i64; n * k];
    for_each_block(py, n, &progress, |start, end| {
        search.run(
            &pool,
            start..end,
            &mut sims[start * k..end * k],
            &mut idx[start * k..end * k],
        )
    })?;
    Ok((matrix2(py, sims, n, k)?, matrix2(py, idx, n, k)?))
}

/// LLM reconstruction weights for given neighbours (see `taskspec_rs.llm_weights`).
#[pyfunction]
#[pyo3(signature = (y_gen, x_gen, neighbors, *, reg=1e-3, num_threads=None))]
fn llm_weights<'py>(
    py: Python<'py>,
    y_gen: PyReadonlyArray2<'py, f32>,
    x_gen: PyReadonlyArray2<'py, f32>,
    neighbors: PyReadonlyArray2<'py, i64>,
    reg: f64,
    num_threads: Option<usize>,
) -> PyResult<Matrix<'py, f32>> {
    let y = view(&y_gen, "y_gen")?;
    let x = view(&x_gen, "x_gen")?;
    let nb = view(&neighbors, "neighbors")?;
    let pool = thread_pool(num_threads).map_err(to_py)?;
    // One output row per neighbour row (the core checks they match y_gen).
    let (n, k) = (nb.rows(), nb.cols());
    let mut w = vec![0f32; n * k];
    py.detach(|| llm_weights_block(&pool, y, x, nb, reg, 0..n, &mut w))
        .map_err(to_py)?;
    matrix2(py, w, n, k)
}

/// Full locally linear mapping: exact kNN, Gram solves and combination.
#[pyfunction]
#[pyo3(signature = (x_gen, y_gen, x_spec, k, *, reg=1e-3, base_bias=None, num_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn llm_project<'py>(
    py: Python<'py>,
    x_gen: PyReadonlyArray2<'py, f32>,
    y_gen: PyReadonlyArray2<'py, f32>,
    x_spec: PyReadonlyArray2<'py, f32>,
    k: usize,
    reg: f64,
    base_bias: Option<PyReadonlyArray1<'py, f32>>,
    num_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Matrix<'py, f32>, Matrix<'py, i64>, Matrix<'py, f32>)> {
    let bias = bias_view(&base_bias)?;
    let x = view(&x_gen, "x_gen")?;
    let y = view(&y_gen, "y_gen")?;
    let xs = view(&x_spec, "x_spec")?;
    let pool = thread_pool(num_threads).map_err(to_py)?;
    let kernel = env_kernel()?;
    let (y_inv, x_inv) = norms(py, &pool, y, x, ["y_gen", "x_gen"])?;
    let search = Search::new(y, &y_inv, x, &x_inv, bias, k)
        .and_then(|s| s.with_kernel(kernel))
        .map_err(to_py)?;
    let (n, e) = (y.rows(), xs.cols());
    let mut out = vec![0f32; n * e];
    let mut nbrs = vec![0i64; n * k];
    let mut sims = vec![0f32; n * k];
    let mut w = vec![0f32; n * k];
    for_each_block(py, n, &progress, |start, end| {
        let (kb, eb) = (start * k..end * k, start * e..end * e);
        search.run(&pool, start..end, &mut sims[kb.clone()], &mut nbrs[kb.clone()])?;
        let nb = MatRef::new(&nbrs, n, k, "neighbors")?;
        llm_weights_block(&pool, y, x, nb, reg, start..end, &mut w[kb.clone()])?;
        combine_block(&pool, xs, nb, &w[kb], start..end, &mut out[eb])
    })?;
    Ok((matrix2(py, out, n, e)?, matrix2(py, nbrs, n, k)?, matrix2(py, w, n, k)?))
}

/// LLM from precomputed neighbours (e.g. an approximate index): weights and combination.
#[pyfunction]
#[pyo3(signature = (x_gen, y_gen, x_spec, neighbors, *, reg=1e-3, num_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn llm_project_neighbors<'py>(
    py: Python<'py>,
    x_gen: PyReadonlyArray2<'py, f32>,
    y_gen: PyReadonlyArray2<'py, f32>,
    x_spec: PyReadonlyArray2<'py, f32>,
    neighbors: PyReadonlyArray2<'py, i64>,
    reg: f64,
    num_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Matrix<'py, f32>, Matrix<'py, f32>)> {
    let x = view(&x_gen, "x_gen")?;
    let y = view(&y_gen, "y_gen")?;
    let xs = view(&x_spec, "x_spec")?;
    let nb = view(&neighbors, "neighbors")?;
    let pool = thread_pool(num_threads).map_err(to_py)?;
    // One output row per neighbour row (the core checks they match y_gen).
    let (n, k, e) = (nb.rows(), nb.cols(), xs.cols());
    let mut out = vec![0f32; n * e];
    let mut w = vec![0f32; n * k];
    for_each_block(py, n, &progress, |start, end| {
        let wb = &mut w[start * k..end * k];
        llm_weights_block(&pool, y, x, nb, reg, start..end, wb)?;
        combine_block(&pool, xs, nb, wb, start..end, &mut out[start * e..end * e])
    })?;
    Ok((matrix2(py, out, n, e)?, matrix2(py, w, n, k)?))
}

/// Build profile of the compiled core ("release" or "debug").
#[pyfunction]
fn build_profile() -> &'static str {
    crate::BUILD_PROFILE
}

/// The exact-kNN kernel this CPU and `TASKSPEC_KNN_KERNEL` select.
#[pyfunction]
fn knn_kernel() -> PyResult<&'static str> {
    Ok(env_kernel()?.name())
}

/// The exact-kNN kernels this CPU can run, the default first.
#[pyfunction]
fn knn_kernels() -> Vec<&'static str> {
    Kernel::available_kernels().into_iter().map(Kernel::name).collect()
}

/// Threads used when `num_threads=None`.
#[pyfunction]
fn default_num_threads() -> usize {
    crate::pool::default_num_threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("NumericalError", m.py().get_type::<NumericalError>())?;
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(llm_weights, m)?)?;
    m.add_function(wrap_pyfunction!(llm_project, m)?)?;
    m.add_function(wrap_pyfunction!(llm_project_neighbors, m)?)?;
    m.add_function(wrap_pyfunction!(build_profile, m)?)?;
    m.add_function(wrap_pyfunction!(default_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(knn_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(knn_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(read_vectors, m)?)?;
    m.add_function(wrap_pyfunction!(write_vectors, m)?)?;
    Ok(())
}

// ===========================================================================
// Word-vector file I/O (crate::vecio): read_vectors / write_vectors, wrapped
// by taskspec_rs.vectors.load_vectors / save_vectors.
// ===========================================================================

fn vecio_to_py(e: crate::vecio::VecIoError) -> PyErr {
    use crate::vecio::VecIoError;
    match e {
        VecIoError::Io { path, source } => {
            let path = path.display().to_string();
            match source.raw_os_error() {
                // OSError(errno, strerror, filename) picks the subclass
                // (FileNotFoundError, PermissionError, ...) from errno.
                Some(code) => {
                    let text = source.to_string();
                    let strerror = text
                        .strip_suffix(&format!(" (os error {code})"))
                        .unwrap_or(&text)
                        .to_string();
                    pyo3::exceptions::PyOSError::new_err((code, strerror, path))
                }
                None => pyo3::exceptions::PyOSError::new_err(format!("{path}: {source}")),
            }
        }
        VecIoError::Format { .. } => PyValueError::new_err(e.to_string()),
        VecIoError::Input(inner) => to_py(inner),
    }
}

/// Read a text or binary word-vector file: (words, vectors, dropped duplicates).
#[pyfunction]
#[pyo3(signature = (path, format, *, limit=None, float64=false, keep_first=true, num_threads=None))]
fn read_vectors<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    format: &str,
    limit: Option<usize>,
    float64: bool,
    keep_first: bool,
    num_threads: Option<usize>,
) -> PyResult<(Vec<String>, Bound<'py, PyAny>, usize)> {
    use crate::vecio::{self, Duplicates, Format};
    let format = Format::parse(format).map_err(to_py)?;
    let dups = if keep_first {
        Duplicates::KeepFirst
    } else {
        Duplicates::Error
    };
    let pool = thread_pool(num_threads).map_err(to_py)?;
    if float64 {
        let v = py
            .detach(|| vecio::read_vectors::<f64>(&pool, &path, format, limit, dups))
            .map_err(vecio_to_py)?;
        let (rows, dim, dropped) = (v.rows(), v.dim, v.dropped);
        Ok((v.words, matrix2(py, v.data, rows, dim)?.into_any(), dropped))
    } else {
        let v = py
            .detach(|| vecio::read_vectors::<f32>(&pool, &path, format, limit, dups))
            .map_err(vecio_to_py)?;
        let (rows, dim, dropped) = (v.rows(), v.dim, v.dropped);
        Ok((v.words, matrix2(py, v.data, rows, dim)?.into_any(), dropped))
    }
}

/// Write words and a C-contiguous float32/float64 matrix atomically.
#[pyfunction]
#[pyo3(signature = (path, words, vectors, format, *, num_threads=None))]
fn write_vectors(
    py: Python<'_>,
    path: std::path::PathBuf,
    words: Vec<String>,
    vectors: &Bound<'_, PyAny>,
    format: &str,
    num_threads: Option<usize>,
) -> PyResult<()> {
    use crate::vecio::{self, Format};
    let format = Format::parse(format).map_err(to_py)?;
    let pool = thread_pool(num_threads).map_err(to_py)?;
    let contiguous = || PyTypeError::new_err("vectors: expected a C-contiguous 2-D float32 or float64 array");
    if let Ok(a) = vectors.extract::<PyReadonlyArray2<'_, f32>>() {
        let dim = a.shape()[1];
        let data = a.as_slice().map_err(|_| contiguous())?;
        py.detach(|| vecio::write_vectors(&pool, &path, format, &words, data, dim))
            .map_err(vecio_to_py)
    } else if let Ok(a) = vectors.extract::<PyReadonlyArray2<'_, f64>>() {
        let dim = a.shape()[1];
        let data = a.as_slice().map_err(|_| contiguous())?;
        py.detach(|| vecio::write_vectors(&pool, &path, format, &words, data, dim))
            .map_err(vecio_to_py)
    } else {
        Err(contiguous())
    }
}
