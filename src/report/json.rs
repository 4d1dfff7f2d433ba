//! JSON: summary.json exactly.

use super::{Reporter, Summary};
use std::io::{self, Write};

/// `--format json`.
pub struct Json;

impl Reporter for Json {
    fn render(&self, s: &Summary, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, s)?;
        writeln!(out)
    }
}
