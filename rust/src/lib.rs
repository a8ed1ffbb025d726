//! taskspec-rs core: exact cosine k-nearest-neighbour search and the locally
//! linear mapping (LLM) of Sakuma & Yoshinaga (CoNLL 2019).
//!
//! The core is plain Rust over row-major `f32` slices; it knows nothing of
//! Python. The optional `python` feature adds the PyO3 binding in [`py`].

pub mod error;
pub mod knn;
pub mod llm;
pub mod matrix;
pub mod pool;
pub mod screen;
pub mod vecio;

#[cfg(feature = "python")]
mod py;

pub use error::{Error, Result};
pub use knn::{inverse_norms, knn_block, Kernel, Neighbors, Search};
pub use llm::{combine_block, llm_weights_block};
pub use matrix::MatRef;
pub use pool::{thread_pool, MAX_THREADS};

/// Build profile the library was compiled with ("release" or "debug").
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) { "debug" } else { "release" };

#[cfg(test)]
mod tests;
