//! Any serialisable document (a prediction, an inspection) in every `--format`: text by its
//! own renderer, JSON as is (fields in their declared order), and csv and markdown as
//! `key,value` rows of its flattened fields (in alphabetical order) (`prediction.first_error_s`, `advice.0.setting`), so a new command gets all four
//! formats from its JSON document and its text view.

use super::Format;
use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

/// A serialisable document with its text view, as a [`super::Render`].
pub struct Document<'a, T: Serialize> {
    /// What json, csv and markdown show.
    pub doc: &'a T,
    /// The text view.
    pub text: &'a dyn Fn() -> String,
}

impl<T: Serialize> super::Render for Document<'_, T> {
    fn render(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        render(self.doc, format, self.text, out)
    }
}

/// Writes `doc` in `format`; `text` renders the text view.
pub fn render<T: Serialize>(
    doc: &T,
    format: Format,
    text: impl FnOnce() -> String,
    out: &mut dyn Write,
) -> io::Result<()> {
    if format == Format::Text {
        return out.write_all(text().as_bytes());
    }
    if format == Format::Json {
        // The document itself, not its Value: its fields keep their declared order.
        let json = serde_json::to_string_pretty(doc).map_err(io::Error::other)?;
        return writeln!(out, "{json}");
    }
    let value = serde_json::to_value(doc).map_err(io::Error::other)?;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["key", "value"])?;
            for (k, v) in flatten(&value) {
                w.write_record([k, v])?;
            }
            w.flush()
        }
        Format::Markdown => {
            writeln!(out, "| key | value |\n|---|---|")?;
            for (k, v) in flatten(&value) {
                writeln!(out, "| {} | {} |", cell(&k), cell(&v))?;
            }
            Ok(())
        }
        Format::Text | Format::Json => Ok(()), // handled above
        // A page needs a run's timeline, JUnit a verdict; a command's document is a table.
        Format::Html | Format::Junit => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--format html and junit show runs (run, report, suite); this command prints text, json, csv or markdown",
        )),
    }
}

/// A markdown cell: pipes escaped, line breaks as spaces.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Every scalar of `v` with its dotted path, in document order; null is an empty value.
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    walk(v, String::new(), &mut rows);
    rows
}

fn walk(v: &Value, path: String, rows: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(v, join(k), rows);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, join(&i.to_string()), rows);
            }
        }
        Value::Null => rows.push((path, String::new())),
        Value::String(s) => rows.push((path, s.clone())),
        other => rows.push((path, other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(format: Format) -> String {
        let doc = json!({"a": {"b": 1.5, "c": null}, "list": ["x|y", true]});
        let mut out = Vec::new();
        render(&doc, format, || "TEXT\n".into(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_format_from_one_document() {
        assert_eq!(rendered(Format::Text), "TEXT\n");
        let json: Value = serde_json::from_str(&rendered(Format::Json)).unwrap();
        assert_eq!(json["a"]["b"], 1.5);
        assert_eq!(
            rendered(Format::Csv),
            "key,value\na.b,1.5\na.c,\nlist.0,x|y\nlist.1,true\n"
        );
        assert_eq!(
            rendered(Format::Markdown),
            "| key | value |\n|---|---|\n| a.b | 1.5 |\n| a.c |  |\n| list.0 | x\\|y |\n| list.1 | true |\n"
        );
    }
}
