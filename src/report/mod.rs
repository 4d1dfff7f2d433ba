//! Reports: the summary (what summary.json holds) and its renderings, one file per format
//! behind one trait. `portlab report` re-renders a saved summary the same way.

pub mod compare;
mod csv_format;
mod json;
pub mod junit;
mod markdown;
mod summary;
mod text;
pub mod verdict;

pub use summary::{ExecSummary, Modelled, ServerSummary, Summary};

use std::io::{self, Write};

/// An output format for `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A human summary.
    Text,
    /// summary.json as is.
    Json,
    /// metric,value,unit rows.
    Csv,
    /// Tables for a pull-request comment.
    Markdown,
    /// JUnit XML: one test case per verdict check, for CI servers' test reports.
    Junit,
}

/// Renders a summary in one format.
pub trait Reporter {
    /// Writes the rendering of `s` to `out`.
    fn render(&self, s: &Summary, out: &mut dyn Write) -> io::Result<()>;
}

/// The reporter for a format.
pub fn reporter(format: Format) -> Box<dyn Reporter> {
    match format {
        Format::Text => Box::new(text::Text),
        Format::Json => Box::new(json::Json),
        Format::Csv => Box::new(csv_format::Csv),
        Format::Markdown => Box::new(markdown::Markdown),
        Format::Junit => Box::new(junit::Junit),
    }
}

/// Reads a saved run: a results directory (its summary.json) or a summary.json itself.
pub fn load_summary(path: &std::path::Path) -> anyhow::Result<Summary> {
    use anyhow::Context;
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read {}; name a results directory (results/<run>/) or its summary.json",
            file.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a portlab summary.json (written by portlab {}?)",
            file.display(),
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// Seconds with millisecond precision and a unit.
pub(crate) fn secs(v: f64) -> String {
    format!("{v:.3} s")
}
