//! Any serialisable document (a prediction, an inspection) in every `--format`: text by its
//! own renderer, JSON as is (fields in their declared order), and csv and markdown as
//! `key,value` rows of its flattened fields (in alphabetical order) (`prediction.first_error_s`, `advice.0.setting`), so a new command gets all four
//! formats from its JSON document and its text view.

use super::Format;
use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

/// A command's document as every format needs it: JSON as declared, its flattened value,
/// and its text view.
pub struct Document<'a> {
    /// The document as JSON, fields in their declared order.
    pub json: String,
    /// The document as a value, for its `key,value` rows (an error when it has no such form).
    pub value: Result<Value, String>,
    /// The text view.
    pub text: &'a dyn Fn() -> String,
}

/// Writes `doc` in `format`; `text` renders the text view.
pub fn render<T: Serialize>(
    doc: &T,
    format: Format,
    text: &dyn Fn() -> String,
    out: &mut dyn Write,
) -> io::Result<()> {
    let document = Document {
        json: serde_json::to_string_pretty(doc).map_err(io::Error::other)?,
        value: serde_json::to_value(doc).map_err(|e| e.to_string()),
        text,
    };
    super::renderer(format).document(&document, out)
}

impl Document<'_> {
    /// Every scalar with its dotted path (csv and markdown rows).
    pub fn rows(&self) -> io::Result<Vec<(String, String)>> {
        match &self.value {
            Ok(v) => Ok(flatten(v)),
            Err(e) => Err(io::Error::other(e.clone())),
        }
    }
}

/// The error of html and junit for a document.
pub(super) fn not_a_run() -> io::Error {
    super::no_form(
        "--format html and junit show runs (run, report, suite); this command prints text, json, csv or markdown",
    )
}

/// A markdown cell: pipes escaped, line breaks as spaces.
pub(super) fn cell(s: &str) -> String {
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
        render(&doc, format, &|| "TEXT\n".into(), &mut out).unwrap();
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
