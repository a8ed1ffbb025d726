//! Word-vector files: word2vec/fastText text (`.vec`) and word2vec binary (`.bin`).
//!
//! Text format: an optional header line `count dim`, then one row per line,
//! `word v1 v2 ... vdim`. Fields are separated by any run of spaces or tabs;
//! leading/trailing whitespace, `\r\n` line ends, a UTF-8 byte-order mark and
//! trailing blank lines are tolerated. Without a header the dimension is the
//! number of values on the first row. A first line of exactly two unsigned
//! integers is always taken as the header (so a header-less file whose first
//! row is `"3 4"` — word "3", one value — is read as a header).
//!
//! Binary format (word2vec C tool): header `count dim\n`, then per vector the
//! word bytes, one space, `dim` little-endian float32 values and an optional
//! `\n` (newlines before a word are skipped).
//!
//! A gzip-compressed file (either format; recognised by its magic bytes, not
//! its name) is decompressed into memory first; for text with `limit`, only
//! until the first `limit` rows are complete. A corrupt or truncated stream is
//! a format error.
//!
//! Reading memory-maps the file. Text is parsed in parallel: the body is cut
//! into newline-aligned chunks, a first pass counts the rows of each chunk, a
//! second parses each chunk straight into its slice of the preallocated
//! output. With `limit`, only the first `limit` rows are located and parsed;
//! the rest of the file is never touched.
//!
//! Every malformed input is an error naming the file and the 1-based line
//! (text) or entry and byte offset (binary): wrong row lengths, non-numeric
//! fields, NaN/inf, invalid UTF-8 in a word, blank lines between rows, a file
//! with fewer (or more) rows than its header declares. Duplicate words keep
//! their first occurrence (the number dropped is reported) or are an error.
//!
//! Writing validates first (words non-empty, unique, without whitespace;
//! values finite), then writes a temporary file in the target directory,
//! fsyncs it and renames it over the target: a failure never leaves a partial
//! file nor touches an existing one.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::error::Error;

/// Errors of word-vector file I/O.
#[derive(Debug, thiserror::Error)]
pub enum VecIoError {
    /// The operating system refused (missing file, permission, disk full...).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file content is malformed at `at`.
    #[error("{}{at}: {msg}", path.display())]
    Format { path: PathBuf, at: Loc, msg: String },
    /// An argument cannot be used (words/vectors to save, format name...).
    #[error(transparent)]
    Input(#[from] Error),
}

/// Where in a file a format error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// The file as a whole.
    File,
    /// 1-based line of a text file.
    Line(usize),
    /// 1-based vector of a binary file and its byte offset.
    Entry { index: usize, byte: usize },
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::File => Ok(()),
            Loc::Line(l) => write!(f, ", line {l}"),
            Loc::Entry { index, byte } => write!(f, ", entry {index} (byte {byte})"),
        }
    }
}

impl Loc {
    fn describe(&self) -> String {
        self.to_string().trim_start_matches(", ").to_string()
    }
}

/// Result alias of this module.
pub type IoResult<T> = std::result::Result<T, VecIoError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VecIoError + '_ {
    move |source| VecIoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(path: &Path, at: Loc, msg: impl Into<String>) -> VecIoError {
    VecIoError::Format {
        path: path.to_path_buf(),
        at,
        msg: msg.into(),
    }
}

/// On-disk layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// word2vec / fastText text (`.vec`, `.txt`).
    Text,
    /// word2vec binary (`.bin`).
    Binary,
}

impl Format {
    /// Parse a format name: `"text"` (`"vec"`, `"txt"`) or `"binary"` (`"bin"`).
    pub fn parse(name: &str) -> crate::Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "text" | "vec" | "txt" => Ok(Format::Text),
            "binary" | "bin" => Ok(Format::Binary),
            _ => Err(Error::invalid(
                "format",
                format!("unknown format {name:?}; expected \"text\" or \"binary\""),
            )),
        }
    }
}

/// What to do with a word seen a second time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplicates {
    /// Keep the first occurrence, drop later ones (counted in [`Vectors::dropped`]).
    KeepFirst,
    /// Fail naming both occurrences.
    Error,
}

/// Element type of the output matrix.
pub trait Real: Copy + Default + Send + Sync + PartialEq + fmt::Debug + 'static {
    /// Parse the longest decimal prefix of `s`: the value and bytes used.
    fn parse_prefix(s: &[u8]) -> Option<(Self, usize)>;
    fn finite(self) -> bool;
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
    /// Append the shortest representation that reads back to `self`.
    fn push_repr(self, buf: &mut ryu::Buffer, out: &mut Vec<u8>);
}

/// `Real` for a float type: parsing, printing and conversions are the same code.
macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            #[inline]
            fn parse_prefix(s: &[u8]) -> Option<(Self, usize)> {
                fast_float2::parse_partial::<$t, _>(s).ok()
            }
            #[inline]
            fn finite(self) -> bool {
                self.is_finite()
            }
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn push_repr(self, buf: &mut ryu::Buffer, out: &mut Vec<u8>) {
                out.extend_from_slice(buf.format_finite(self).as_bytes());
            }
        }
    };
}

impl_real!(f32);
impl_real!(f64);

/// Vectors read from a file: `words[i]` is row `i` of the row-major `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vectors<T> {
    pub words: Vec<String>,
    pub data: Vec<T>,
    pub dim: usize,
    /// Rows dropped because their word had been seen before (keep-first).
    pub dropped: usize,
}

impl<T> Vectors<T> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.words.len()
    }
}

// ---------------------------------------------------------------- reading

/// The bytes of a file: a memory map, or an owned buffer for what cannot be
/// mapped (empty files, pipes).
enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// `ENOMEM` for `path`: a buffer the file needs could not be allocated.
fn out_of_memory(path: &Path) -> VecIoError {
    io_err(path)(io::Error::from_raw_os_error(libc::ENOMEM))
}

/// `n` default values, or `ENOMEM` (never an abort) when they cannot be allocated.
/// Callers bound `n` by the size of the file first; this only turns a failed
/// allocation of an honest size into an error.
fn zeroed<T: Clone + Default>(path: &Path, n: usize) -> IoResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| out_of_memory(path))?;
    v.resize(n, T::default());
    Ok(v)
}

/// Append `bytes` to `out`, growing it fallibly (`ENOMEM` instead of an abort).
fn push_bytes(path: &Path, out: &mut Vec<u8>, bytes: &[u8]) -> IoResult<()> {
    out.try_reserve(bytes.len()).map_err(|_| out_of_memory(path))?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// Whether a file of this type can be read: regular files, pipes (FIFOs,
/// `<(zcat ...)`) and sockets; not devices such as `/dev/zero`, whose
/// endless stream would be read until memory runs out.
#[cfg(unix)]
fn readable_kind(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    !(t.is_char_device() || t.is_block_device())
}

#[cfg(not(unix))]
fn readable_kind(_meta: &std::fs::Metadata) -> bool {
    true
}

fn open_bytes(path: &Path) -> IoResult<Bytes> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    if meta.is_dir() {
        return Err(io_err(path)(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    if !readable_kind(&meta) {
        return Err(format_err(
            path,
            Loc::File,
            "is a device, not a regular file or a pipe; pass the path of a word-vector file",
        ));
    }
    if meta.is_file() && meta.len() > 0 {
        // SAFETY: the map is read-only; like every mmap reader we assume the
        // file is not truncated by another process while it is being read.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?;
        return Ok(Bytes::Map(map));
    }
    // A pipe (or an empty file): read it in bounded steps, growing fallibly.
    let mut v = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => push_bytes(path, &mut v, &buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Ok(Bytes::Owned(v))
}

/// First two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompress the gzip stream(s) in `raw`; with `lines`, stop once that many
/// complete lines are out (the rest is cut at the last line break).
fn gunzip(path: &Path, raw: &[u8], lines: Option<usize>) -> IoResult<Vec<u8>> {
    let mut dec = flate2::read::MultiGzDecoder::new(raw);
    // Grown as the stream decompresses (never sized from a header inside it),
    // fallibly: a decompression bomb ends in `ENOMEM`, not an abort.
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve(raw.len().saturating_mul(2).min(1 << 30))
        .map_err(|_| out_of_memory(path))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut seen = 0usize;
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format_err(
                    path,
                    Loc::File,
                    format!("corrupt or truncated gzip data after {} decompressed bytes ({e}); re-download or re-compress the file", out.len()),
                ))
            }
        };
        push_bytes(path, &mut out, &buf[..n])?;
        if let Some(want) = lines {
            seen += memchr::memchr_iter(b'\n', &buf[..n]).count();
            if seen >= want {
                let cut = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                out.truncate(cut);
                break;
            }
        }
    }
    Ok(out)
}

/// Read a word-vector file in `format`. `limit`: read at most this many rows.
pub fn read_vectors<T: Real>(
    pool: &ThreadPool,
    path: &Path,
    format: Format,
    limit: Option<usize>,
    dups: Duplicates,
) -> IoResult<Vectors<T>> {
    let bytes = open_bytes(path)?;
    parse_bytes(pool, &bytes, path, format, limit, dups)
}

/// Parse the content of a word-vector file held in `buf` (gzip-compressed or
/// not, recognised by its magic bytes); `path` names it in errors. This is
/// [`read_vectors`] without the file system (the fuzz targets call it).
pub fn parse_bytes<T: Real>(
    pool: &ThreadPool,
    buf: &[u8],
    path: &Path,
    format: Format,
    limit: Option<usize>,
    dups: Duplicates,
) -> IoResult<Vectors<T>> {
    let plain;
    let buf = if buf.starts_with(&GZIP_MAGIC) {
        // Header plus `limit` rows, and one more line as margin.
        let lines = match format {
            Format::Text => limit.map(|l| l.saturating_add(2)),
            Format::Binary => None,
        };
        plain = gunzip(path, buf, lines)?;
        &plain[..]
    } else {
        buf
    };
    match format {
        Format::Text => parse_text(pool, buf, path, limit, dups),
        Format::Binary => parse_binary(pool, buf, path, limit, dups),
    }
}

/// Field separators inside a line: ASCII whitespace except `\n`.
#[inline]
fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

#[inline]
fn is_space(b: u8) -> bool {
    is_sep(b) || b == b'\n'
}

#[inline]
fn skip_sep(line: &[u8], mut p: usize) -> usize {
    while p < line.len() && is_sep(line[p]) {
        p += 1;
    }
    p
}

#[inline]
fn token_end(line: &[u8], mut p: usize) -> usize {
    while p < line.len() && !is_sep(line[p]) {
        p += 1;
    }
    p
}

/// A field for an error message: lossy UTF-8, at most 40 characters.
fn show(token: &[u8]) -> String {
    let s = String::from_utf8_lossy(token);
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut:?}...")
    } else {
        format!("{s:?}")
    }
}

fn tokens(line: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut p = skip_sep(line, 0);
    while p < line.len() {
        let e = token_end(line, p);
        out.push(&line[p..e]);
        p = skip_sep(line, e);
    }
    out
}

/// `count dim` if `line` is exactly two unsigned integers.
fn header(line: &[u8]) -> Option<(usize, usize)> {
    let t = tokens(line);
    let int = |s: &[u8]| -> Option<usize> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    match t.as_slice() {
        [a, b] => Some((int(a)?, int(b)?)),
        _ => None,
    }
}

/// Parse one text row into `out` (its `dim` values); returns the word bytes.
#[inline]
fn parse_row<'a, T: Real>(line: &'a [u8], out: &mut [T]) -> Result<&'a [u8], String> {
    let dim = out.len();
    let mut p = skip_sep(line, 0);
    if p == line.len() {
        return Err("blank line between vectors".into());
    }
    let e = token_end(line, p);
    let word = &line[p..e];
    p = e;
    for (j, slot) in out.iter_mut().enumerate() {
        p = skip_sep(line, p);
        if p == line.len() {
            return Err(format!(
                "expected {dim} values after the word {}, found {j}",
                show(word)
            ));
        }
        let (v, n) = match T::parse_prefix(&line[p..]) {
            Some((v, n)) if p + n == line.len() || is_sep(line[p + n]) => (v, n),
            _ => {
                let e = token_end(line, p);
                return Err(format!("value {} is not a number: {}", j + 1, show(&line[p..e])));
            }
        };
        if !v.finite() {
            return Err(format!(
                "value {} is {} (NaN and infinity are rejected)",
                j + 1,
                show(&line[p..p + n])
            ));
        }
        *slot = v;
        p += n;
    }
    p = skip_sep(line, p);
    if p < line.len() {
        let extra = tokens(&line[p..]).len();
        return Err(format!(
            "expected {dim} values after the word {}, found {}",
            show(word),
            dim + extra
        ));
    }
    Ok(word)
}

fn utf8_word(word: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(word) {
        Ok(w) => Ok(w.to_owned()),
        Err(e) => Err(format!(
            "word {} is not valid UTF-8 (invalid byte at offset {} of the word)",
            show(word),
            e.valid_up_to()
        )),
    }
}

/// The error of a row too short to hold `dim` values (fewer than `2 dim + 1`
/// bytes): the message [`parse_row`] gives for it, without a `dim`-sized buffer.
fn short_row<T: Real>(line: &[u8], dim: usize) -> String {
    let n = tokens(line).len();
    if n == 0 {
        return "blank line between vectors".into();
    }
    // `n - 1 < dim` values, bounded by the line length.
    let mut vals = vec![T::default(); n - 1];
    match parse_row(line, &mut vals) {
        Err(msg) => msg,
        Ok(word) => format!("expected {dim} values after the word {}, found {}", show(word), n - 1),
    }
}

/// Parse `chunk` (whole lines) into `out`; error: (row within chunk, message).
fn parse_chunk<T: Real>(chunk: &[u8], dim: usize, out: &mut [T]) -> Result<Vec<String>, (usize, String)> {
    let mut words = Vec::with_capacity(out.len() / dim);
    for (i, (line, row)) in chunk.split(|&b| b == b'\n').zip(out.chunks_exact_mut(dim)).enumerate() {
        let word = parse_row(line, row).map_err(|m| (i, m))?;
        words.push(utf8_word(word).map_err(|m| (i, m))?);
    }
    Ok(words)
}

/// Newline-aligned chunks of `body` of about `target` bytes.
fn chunks(body: &[u8], target: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let probe = start + target;
        let end = if probe >= body.len() {
            body.len()
        } else {
            memchr::memchr(b'\n', &body[probe..]).map_or(body.len(), |i| probe + i + 1)
        };
        out.push(&body[start..end]);
        start = end;
    }
    out
}

/// Whether one row of `dim` values of `T` has a size in bytes that a buffer
/// (and a numpy array) can have, `<= isize::MAX`: the bound on a header's
/// dimension that holds even for a file without rows. With rows, the parsers
/// also check the dimension against the bytes the file has.
fn row_fits<T>(dim: usize) -> bool {
    dim.checked_mul(std::mem::size_of::<T>())
        .is_some_and(|b| b <= isize::MAX as usize)
}

fn huge_dim(path: &Path, dim: usize) -> VecIoError {
    format_err(
        path,
        Loc::Line(1),
        format!("header declares dimension {dim}, too large for any vector (damaged header?)"),
    )
}

/// Parse a text (`.vec`) file held in `buf`; `path` names it in errors.
pub fn parse_text<T: Real>(
    pool: &ThreadPool,
    buf: &[u8],
    path: &Path,
    limit: Option<usize>,
    dups: Duplicates,
) -> IoResult<Vectors<T>> {
    let buf = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf);
    let end = buf.iter().rposition(|&b| !is_space(b)).map_or(0, |i| i + 1);
    let content = &buf[..end];
    if content.is_empty() {
        return Err(format_err(path, Loc::File, "empty file: no header and no vectors"));
    }
    let first_end = memchr::memchr(b'\n', content).unwrap_or(content.len());
    let first = &content[..first_end];
    let (declared, dim, body, first_line) = match header(first) {
        Some((_, 0)) => return Err(format_err(path, Loc::Line(1), "header declares dimension 0")),
        Some((_, dim)) if !row_fits::<T>(dim) => return Err(huge_dim(path, dim)),
        Some((count, dim)) => (Some(count), dim, &content[(first_end + 1).min(content.len())..], 2),
        None => {
            let n = tokens(first).len();
            if n < 2 {
                return Err(format_err(
                    path,
                    Loc::Line(1),
                    format!(
                        "expected a header \"count dim\" or a row \"word v1 ... vd\", found {}",
                        show(first)
                    ),
                ));
            }
            (None, n - 1, content, 1)
        }
    };
    // Rows to locate: the limit, never more than the header declares.
    let want = match (declared, limit) {
        (Some(c), Some(l)) => Some(c.min(l)),
        (None, Some(l)) => Some(l),
        (_, None) => None,
    };
    let body = match want {
        Some(0) => &body[..0],
        Some(w) => match memchr::memchr_iter(b'\n', body).nth(w - 1) {
            Some(nl) => &body[..nl],
            None => body,
        },
        None => body,
    };
    let threads = pool.current_num_threads().max(1);
    let target = (body.len() / (threads * 8)).clamp(1 << 16, 8 << 20);
    let parts = chunks(body, target);
    let counts: Vec<usize> = pool.install(|| {
        parts
            .par_iter()
            .map(|c| memchr::memchr_iter(b'\n', c).count() + usize::from(c.last() != Some(&b'\n')))
            .collect()
    });
    let rows: usize = counts.iter().sum();
    // A row error at 0-based row `row`, hinting at truncation when it is the
    // last row of a file shorter than its header says.
    let row_error = |row: usize, mut msg: String| {
        if let Some(c) = declared.filter(|&c| row + 1 == rows && rows < c) {
            msg.push_str(&format!(
                " (truncated file? the header declares {c} vectors, the file has {rows} lines of them)"
            ));
        }
        format_err(path, Loc::Line(first_line + row), msg)
    };
    // The dimension comes from the file: before sizing anything from it, check
    // the rows can hold it. A row of `dim` values takes at least `2 dim + 1`
    // bytes (the word, then a separator and a digit per value) and rows are
    // separated by one byte, so valid rows fill at least `rows (2 dim + 2) - 1`
    // bytes of the body. Past this check `rows * dim <= body.len() / 2`.
    let min_row = dim.checked_mul(2).and_then(|b| b.checked_add(1));
    let fits = rows == 0
        || min_row
            .and_then(|b| rows.checked_mul(b + 1))
            .is_some_and(|need| need <= body.len() + 1);
    if !fits {
        // Some row is shorter than `2 dim + 1` bytes (else the body would be longer).
        let short = body
            .split(|&b| b == b'\n')
            .take(rows)
            .enumerate()
            .find(|(_, l)| min_row.is_none_or(|b| l.len() < b));
        return Err(match short {
            Some((row, line)) => row_error(row, short_row::<T>(line, dim)),
            None => format_err(path, Loc::Line(1), format!("dimension {dim} does not fit in the file")),
        });
    }
    let cells = rows
        .checked_mul(dim)
        .ok_or_else(|| format_err(path, Loc::Line(1), "rows x dimension overflows"))?;
    let mut data = zeroed::<T>(path, cells)?;
    let mut slices = Vec::with_capacity(parts.len());
    let mut rest = data.as_mut_slice();
    let mut first_row = 0;
    for (&part, &n) in parts.iter().zip(&counts) {
        let (head, tail) = rest.split_at_mut(n * dim);
        slices.push((part, first_row, head));
        rest = tail;
        first_row += n;
    }
    let results: Vec<Result<Vec<String>, (usize, String)>> = pool.install(|| {
        slices
            .into_par_iter()
            .map(|(part, start, out)| parse_chunk(part, dim, out).map_err(|(i, m)| (start + i, m)))
            .collect()
    });
    let mut words = Vec::with_capacity(rows);
    for r in results {
        match r {
            Ok(w) => words.extend(w),
            Err((row, msg)) => return Err(row_error(row, msg)),
        }
    }
    if let Some(c) = declared {
        let expected = want.unwrap_or(c);
        if rows < expected {
            return Err(format_err(
                path,
                Loc::Line(first_line + rows),
                format!("truncated file: header declares {c} vectors but the file has only {rows}"),
            ));
        }
        if rows > c {
            return Err(format_err(
                path,
                Loc::Line(first_line + c),
                format!("header declares {c} vectors but the file has {rows}"),
            ));
        }
    }
    let mut v = Vectors {
        words,
        data,
        dim,
        dropped: 0,
    };
    dedup(&mut v, dups, path, |i| Loc::Line(first_line + i))?;
    Ok(v)
}

/// Parse a word2vec binary (`.bin`) file held in `buf`.
pub fn parse_binary<T: Real>(
    pool: &ThreadPool,
    buf: &[u8],
    path: &Path,
    limit: Option<usize>,
    dups: Duplicates,
) -> IoResult<Vectors<T>> {
    if buf.is_empty() {
        return Err(format_err(path, Loc::File, "empty file: no header and no vectors"));
    }
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return Err(format_err(path, Loc::Line(1), "no header line \"count dim\""));
    };
    let (count, dim) = match header(&buf[..nl]) {
        Some((_, 0)) => return Err(format_err(path, Loc::Line(1), "header declares dimension 0")),
        Some((_, dim)) if !row_fits::<T>(dim) || !row_fits::<f32>(dim) => return Err(huge_dim(path, dim)),
        Some(h) => h,
        None => {
            return Err(format_err(
                path,
                Loc::Line(1),
                format!("expected a header \"count dim\", found {}", show(&buf[..nl.min(80)])),
            ))
        }
    };
    let want = limit.map_or(count, |l| l.min(count));
    let vec_bytes = dim
        .checked_mul(4)
        .ok_or_else(|| format_err(path, Loc::Line(1), "header dimension too large"))?;
    // (word start, word end, vector start); capacity bounded by the file size.
    // Each entry takes at least `vec_bytes + 2` bytes (a word byte, the space, the values).
    let mut offsets: Vec<(usize, usize, usize)> =
        Vec::with_capacity(want.min(buf.len() / vec_bytes.saturating_add(2) + 1));
    let mut pos = nl + 1;
    for i in 0..want {
        while pos < buf.len() && buf[pos] == b'\n' {
            pos += 1;
        }
        let at = Loc::Entry {
            index: i + 1,
            byte: pos,
        };
        let truncated = |what: &str| {
            format_err(
                path,
                at,
                format!("truncated file ({what}): header declares {count} vectors but only {i} are complete"),
            )
        };
        if pos >= buf.len() {
            return Err(truncated("end of file"));
        }
        let Some(sp) = memchr::memchr(b' ', &buf[pos..]) else {
            return Err(truncated("no space after the word"));
        };
        if sp == 0 {
            return Err(format_err(path, at, "empty word"));
        }
        let vs = pos + sp + 1;
        if buf.len() - vs < vec_bytes {
            return Err(truncated(&format!(
                "{} bytes left for {dim} float32 values",
                buf.len() - vs
            )));
        }
        offsets.push((pos, pos + sp, vs));
        pos = vs + vec_bytes;
    }
    if want == count {
        if let Some(extra) = buf[pos..].iter().position(|&b| !is_space(b)) {
            return Err(format_err(
                path,
                Loc::Entry {
                    index: count + 1,
                    byte: pos + extra,
                },
                format!("header declares {count} vectors but the file continues after them"),
            ));
        }
    }
    let rows = offsets.len();
    // Every entry was found in the file: `rows * vec_bytes <= buf.len()`.
    debug_assert!(rows.checked_mul(vec_bytes).is_some_and(|b| b <= buf.len()));
    let mut data = zeroed::<T>(path, rows * dim)?;
    let entry = |i: usize| Loc::Entry {
        index: i + 1,
        byte: offsets[i].0,
    };
    let convert = |i: usize, out: &mut [T]| -> Result<String, String> {
        let (ws, we, vs) = offsets[i];
        for (j, (slot, b)) in out.iter_mut().zip(buf[vs..vs + vec_bytes].chunks_exact(4)).enumerate() {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if !v.is_finite() {
                return Err(format!(
                    "value {} of word {} is {v} (NaN and infinity are rejected)",
                    j + 1,
                    show(&buf[ws..we])
                ));
            }
            *slot = T::from_f32(v);
        }
        utf8_word(&buf[ws..we])
    };
    let words: Result<Vec<String>, String> = pool.install(|| {
        data.par_chunks_mut(dim)
            .enumerate()
            .with_min_len(256)
            .map(|(i, out)| convert(i, out))
            .collect()
    });
    let words = match words {
        Ok(w) => w,
        Err(_) => {
            // Report the first bad entry, whichever thread saw one first.
            let mut row = vec![T::default(); dim];
            let (i, msg) = (0..rows)
                .find_map(|i| convert(i, &mut row).err().map(|m| (i, m)))
                .expect("a failing entry");
            return Err(format_err(path, entry(i), msg));
        }
    };
    let mut v = Vectors {
        words,
        data,
        dim,
        dropped: 0,
    };
    dedup(&mut v, dups, path, entry)?;
    Ok(v)
}

/// Drop (or reject) rows whose word was seen on an earlier row.
fn dedup<T: Copy>(v: &mut Vectors<T>, dups: Duplicates, path: &Path, loc: impl Fn(usize) -> Loc) -> IoResult<()> {
    let mut drop = Vec::new();
    {
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(v.words.len());
        for (i, w) in v.words.iter().enumerate() {
            match seen.entry(w.as_str()) {
                Entry::Occupied(first) => {
                    if dups == Duplicates::Error {
                        return Err(format_err(
                            path,
                            loc(i),
                            format!("duplicate word {w:?} (first at {})", loc(*first.get()).describe()),
                        ));
                    }
                    drop.push(i);
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
    }
    if drop.is_empty() {
        return Ok(());
    }
    let d = v.dim;
    let mut next_drop = drop.iter().peekable();
    let mut kept = 0;
    for i in 0..v.words.len() {
        if next_drop.peek() == Some(&&i) {
            next_drop.next();
            continue;
        }
        if kept != i {
            v.words.swap(kept, i);
            v.data.copy_within(i * d..(i + 1) * d, kept * d);
        }
        kept += 1;
    }
    v.words.truncate(kept);
    v.data.truncate(kept * d);
    v.dropped = drop.len();
    Ok(())
}

// ---------------------------------------------------------------- writing

/// Validate `words` / `data` for a text or binary file.
fn validate<T: Real>(pool: &ThreadPool, format: Format, words: &[String], data: &[T], dim: usize) -> crate::Result<()> {
    if dim == 0 {
        return Err(Error::invalid("vectors", "must have at least one column"));
    }
    if words.len().checked_mul(dim) != Some(data.len()) {
        return Err(Error::invalid(
            "vectors",
            format!(
                "has {} values, not {} words x {dim} dimensions",
                data.len(),
                words.len()
            ),
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        if w.is_empty() {
            return Err(Error::invalid("words", format!("word {i} is empty")));
        }
        if w.bytes().any(is_space) {
            return Err(Error::invalid(
                "words",
                format!("word {i} ({w:?}) contains whitespace, which the {format:?} format cannot store"),
            ));
        }
        if let Some(j) = seen.insert(w, i) {
            return Err(Error::invalid(
                "words",
                format!("duplicate word {w:?} at indices {j} and {i}"),
            ));
        }
    }
    let binary = format == Format::Binary;
    let bad = pool.install(|| {
        data.par_chunks(dim)
            .enumerate()
            .with_min_len(256)
            .find_first(|(_, row)| row.iter().any(|v| !v.finite() || (binary && !v.to_f32().is_finite())))
            .map(|(i, _)| i)
    });
    if let Some(i) = bad {
        let what = if data[i * dim..(i + 1) * dim].iter().any(|v| !v.finite()) {
            "contains NaN or inf"
        } else {
            "has values outside the float32 range (the binary format stores float32)"
        };
        return Err(Error::invalid("vectors", format!("row {i} ({:?}) {what}", words[i])));
    }
    Ok(())
}

/// Write `words` and the row-major `data` (`dim` columns) to `path`, atomically.
pub fn write_vectors<T: Real>(
    pool: &ThreadPool,
    path: &Path,
    format: Format,
    words: &[String],
    data: &[T],
    dim: usize,
) -> IoResult<()> {
    validate(pool, format, words, data, dim)?;
    atomic_write(path, |w| {
        writeln!(w, "{} {}", words.len(), dim)?;
        match format {
            Format::Text => write_text_rows(pool, w, words, data, dim),
            Format::Binary => {
                for (word, row) in words.iter().zip(data.chunks_exact(dim)) {
                    w.write_all(word.as_bytes())?;
                    w.write_all(b" ")?;
                    for v in row {
                        w.write_all(&v.to_f32().to_le_bytes())?;
                    }
                    w.write_all(b"\n")?;
                }
                Ok(())
            }
        }
    })
}

fn write_text_rows<T: Real>(
    pool: &ThreadPool,
    w: &mut impl Write,
    words: &[String],
    data: &[T],
    dim: usize,
) -> io::Result<()> {
    const BATCH: usize = 16384;
    const PART: usize = 512;
    for (bw, bd) in words.chunks(BATCH).zip(data.chunks(BATCH * dim)) {
        let texts: Vec<Vec<u8>> = pool.install(|| {
            bw.par_chunks(PART)
                .zip(bd.par_chunks(PART * dim))
                .map(|(pw, pd)| {
                    let mut out = Vec::with_capacity(pw.len() * (dim * 12 + 16));
                    let mut buf = ryu::Buffer::new();
                    for (word, row) in pw.iter().zip(pd.chunks_exact(dim)) {
                        out.extend_from_slice(word.as_bytes());
                        for &v in row {
                            out.push(b' ');
                            v.push_repr(&mut buf, &mut out);
                        }
                        out.push(b'\n');
                    }
                    out
                })
                .collect()
        });
        for t in &texts {
            w.write_all(t)?;
        }
    }
    Ok(())
}

/// Removes the temporary file unless the write was committed.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Write through `body` into a temporary file next to `path`, fsync, rename.
fn atomic_write(path: &Path, body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>) -> IoResult<()> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| {
        VecIoError::Input(Error::invalid(
            "path",
            format!("{} does not name a file", path.display()),
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        return Err(io_err(path)(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let (tmp, file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp = dir.join(tmp_name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(path)(e)),
        }
    };
    let mut guard = TempGuard { path: tmp, armed: true };
    let mut w = BufWriter::with_capacity(1 << 20, file);
    body(&mut w).map_err(io_err(path))?;
    let file = w.into_inner().map_err(|e| io_err(path)(e.into_error()))?;
    file.sync_all().map_err(io_err(path))?;
    drop(file);
    std::fs::rename(&guard.path, path).map_err(io_err(path))?;
    guard.armed = false;
    // Persist the rename itself; best effort (not every filesystem allows it).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> std::sync::Arc<ThreadPool> {
        crate::pool::thread_pool(Some(2)).unwrap()
    }

    fn text(s: &str) -> IoResult<Vectors<f32>> {
        parse_text(&pool(), s.as_bytes(), Path::new("v.vec"), None, Duplicates::KeepFirst)
    }

    fn msg<T: fmt::Debug>(r: IoResult<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn text_with_header() {
        let v = text("2 3\nthe 0.1 0.2 0.3\nof -1 2e-3 4\n").unwrap();
        assert_eq!(v.words, ["the", "of"]);
        assert_eq!(v.data, [0.1, 0.2, 0.3, -1.0, 2e-3, 4.0]);
        assert_eq!((v.dim, v.dropped), (3, 0));
    }

    #[test]
    fn text_without_header_spaces_crlf_bom() {
        let v = text("\u{feff}the  0.5\t1   \r\nof 2 3 \r\n\n\n").unwrap();
        assert_eq!(v.words, ["the", "of"]);
        assert_eq!(v.data, [0.5, 1.0, 2.0, 3.0]);
        assert_eq!(v.dim, 2);
    }

    #[test]
    fn text_limit_stops_early() {
        let s = "3 2\na 1 2\nb 3 4\nthis line is garbage\n";
        let v = parse_text::<f64>(&pool(), s.as_bytes(), Path::new("v"), Some(2), Duplicates::KeepFirst).unwrap();
        assert_eq!(v.words, ["a", "b"]);
        assert_eq!(v.data, [1.0, 2.0, 3.0, 4.0]);
        let v = parse_text::<f32>(&pool(), s.as_bytes(), Path::new("v"), Some(0), Duplicates::KeepFirst).unwrap();
        assert_eq!((v.rows(), v.dim), (0, 2));
    }

    #[test]
    fn text_errors_name_line() {
        assert_eq!(
            msg(text("2 2\na 1 2\nb 1\n")),
            "v.vec, line 3: expected 2 values after the word \"b\", found 1"
        );
        assert!(msg(text("2 2\na 1 2\nb 1 2 3\n")).contains("line 3: expected 2 values after the word \"b\", found 3"));
        assert!(msg(text("2 2\na 1 x2\nb 1 2\n")).contains("line 2: value 2 is not a number: \"x2\""));
        assert!(msg(text("2 2\na 1 2\nb nan 2\n")).contains("line 3: value 1 is \"nan\""));
        assert!(msg(text("a 1 2\nb inf 2\n")).contains("line 2: value 1 is \"inf\""));
        assert!(msg(text("3 2\na 1 2\nb 1 2\n"))
            .contains("line 4: truncated file: header declares 3 vectors but the file has only 2"));
        assert!(msg(text("1 2\na 1 2\nb 1 2\n")).contains("line 3: header declares 1 vectors but the file has 2"));
        assert!(msg(text("a 1 2\n\nb 1 2\n")).contains("line 2: blank line"));
        assert!(msg(text("3 2\na 1 2\nb 1"))
            .contains("line 3: expected 2 values after the word \"b\", found 1 (truncated file?"));
        assert!(msg(text("")).contains("empty file"));
        assert!(msg(text("word\n")).contains("line 1: expected a header"));
        let bad = parse_text::<f32>(&pool(), b"a 1\n\xffb 2\n", Path::new("v"), None, Duplicates::KeepFirst);
        assert!(msg(bad).contains("v, line 2: word \"\u{fffd}b\" is not valid UTF-8"));
    }

    #[test]
    fn duplicates_keep_first_or_fail() {
        let v = text("a 1\nb 2\na 3\nc 4\nb 5\n").unwrap();
        assert_eq!(v.words, ["a", "b", "c"]);
        assert_eq!(v.data, [1.0, 2.0, 4.0]);
        assert_eq!(v.dropped, 2);
        let e = parse_text::<f32>(&pool(), b"a 1\nb 2\na 3\n", Path::new("v"), None, Duplicates::Error);
        assert_eq!(msg(e), "v, line 3: duplicate word \"a\" (first at line 1)");
    }

    #[test]
    fn many_chunks_match_sequential() {
        let mut s = String::from("5000 4\n");
        for i in 0..5000 {
            s.push_str(&format!(
                "w{i} {} {} {} {}\n",
                i,
                -(i as f32) / 7.0,
                0.25,
                i as f32 * 1e-3
            ));
        }
        let v = text(&s).unwrap();
        assert_eq!(v.rows(), 5000);
        assert_eq!(v.words[4321], "w4321");
        assert_eq!(v.data[4321 * 4], 4321.0);
        // Chunks far smaller than the input.
        assert!(chunks(s.as_bytes(), 100).len() > 100);
        let whole: usize = chunks(s.as_bytes(), 100).iter().map(|c| c.len()).sum();
        assert_eq!(whole, s.len());
    }

    fn binary(rows: &[(&str, &[f32])], newline: bool) -> Vec<u8> {
        let mut b = format!("{} {}\n", rows.len(), rows[0].1.len()).into_bytes();
        for (w, v) in rows {
            b.extend_from_slice(w.as_bytes());
            b.push(b' ');
            for x in *v {
                b.extend_from_slice(&x.to_le_bytes());
            }
            if newline {
                b.push(b'\n');
            }
        }
        b
    }

    #[test]
    fn binary_roundtrip_and_errors() {
        let p = Path::new("v.bin");
        for nl in [true, false] {
            let b = binary(&[("a", &[1.0, 2.0]), ("b", &[3.0, 4.0])], nl);
            let v = parse_binary::<f64>(&pool(), &b, p, None, Duplicates::KeepFirst).unwrap();
            assert_eq!(v.words, ["a", "b"]);
            assert_eq!(v.data, [1.0, 2.0, 3.0, 4.0]);
            let v = parse_binary::<f32>(&pool(), &b, p, Some(1), Duplicates::KeepFirst).unwrap();
            assert_eq!(v.words, ["a"]);
            let e = parse_binary::<f32>(&pool(), &b[..b.len() - 3], p, None, Duplicates::KeepFirst);
            let at = format!("entry 2 (byte {}): truncated file", if nl { 15 } else { 14 });
            assert!(msg(e).contains(&at), "{nl}");
        }
        let b = binary(&[("a", &[1.0]), ("b", &[f32::NAN])], true);
        let e = parse_binary::<f32>(&pool(), &b, p, None, Duplicates::KeepFirst);
        assert!(msg(e).contains("entry 2 (byte 11): value 1 of word \"b\" is NaN"));
        let mut b = binary(&[("a", &[1.0])], true);
        b.extend_from_slice(b"junk");
        assert!(msg(parse_binary::<f32>(&pool(), &b, p, None, Duplicates::KeepFirst)).contains("continues after them"));
        assert!(msg(parse_binary::<f32>(&pool(), b"a 1 2\n", p, None, Duplicates::KeepFirst)).contains("line 1"));
    }

    #[test]
    fn write_then_read_files() {
        let dir = std::env::temp_dir().join(format!("taskspec-vecio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let words: Vec<String> = ["α", "b", "c"].iter().map(|s| s.to_string()).collect();
        let data = [0.1f32, -2.5e-8, 3e30, 1.0, 0.0, -0.0, 7.25, 1e-3, 123456.79];
        for (fmt, name) in [(Format::Text, "v.vec"), (Format::Binary, "v.bin")] {
            let path = dir.join(name);
            write_vectors(&pool(), &path, fmt, &words, &data, 3).unwrap();
            let v = read_vectors::<f32>(&pool(), &path, fmt, None, Duplicates::Error).unwrap();
            assert_eq!(v.words, words);
            assert_eq!(v.data, data);
            // A failing write leaves the old file and no temporary behind.
            let before = std::fs::read(&path).unwrap();
            let mut bad = data;
            bad[4] = f32::NAN;
            let e = write_vectors(&pool(), &path, fmt, &words, &bad, 3).unwrap_err();
            assert!(e.to_string().contains("vectors: row 1 (\"b\") contains NaN or inf"));
            assert_eq!(std::fs::read(&path).unwrap(), before);
        }
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let e = write_vectors(
            &pool(),
            &dir.join("x"),
            Format::Text,
            &["a b".to_string()],
            &[1.0f32],
            1,
        );
        assert!(msg(e).contains("contains whitespace"));
        let e = write_vectors(
            &pool(),
            &dir.join("x"),
            Format::Text,
            &["a".into(), "a".into()],
            &[1.0f32, 2.0],
            1,
        );
        assert!(msg(e).contains("duplicate word \"a\" at indices 0 and 1"));
        let e = read_vectors::<f32>(&pool(), &dir.join("missing"), Format::Text, None, Duplicates::Error).unwrap_err();
        assert!(matches!(e, VecIoError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gzip_files_read_like_plain_ones() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("taskspec-vecio-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let words: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
        let data: Vec<f32> = (0..5000 * 4).map(|i| (i % 97) as f32 * 0.25 - 3.0).collect();
        let gz = |src: &Path, dst: &Path, members: usize| {
            let raw = std::fs::read(src).unwrap();
            let mut out = Vec::new();
            // Several members, as concatenated .gz files are.
            for part in raw.chunks(raw.len().div_ceil(members)) {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(part).unwrap();
                out.extend(e.finish().unwrap());
            }
            std::fs::write(dst, &out).unwrap();
            out
        };
        for (fmt, name) in [(Format::Text, "v.vec"), (Format::Binary, "v.bin")] {
            let plain = dir.join(name);
            write_vectors(&pool(), &plain, fmt, &words, &data, 4).unwrap();
            let packed = dir.join(format!("{name}.gz"));
            let bytes = gz(&plain, &packed, 3);
            let v = read_vectors::<f32>(&pool(), &packed, fmt, None, Duplicates::Error).unwrap();
            assert_eq!((v.words, v.data), (words.clone(), data.clone()));
            let v = read_vectors::<f32>(&pool(), &packed, fmt, Some(7), Duplicates::Error).unwrap();
            assert_eq!((&v.words[..], &v.data[..]), (&words[..7], &data[..28]));
            // A truncated download is a format error naming the file, not a short read.
            std::fs::write(&packed, &bytes[..bytes.len() / 2]).unwrap();
            let e = msg(read_vectors::<f32>(&pool(), &packed, fmt, None, Duplicates::Error));
            assert!(e.contains("corrupt or truncated gzip data") && e.contains(".gz"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
