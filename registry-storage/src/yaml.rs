//! YAML documents as JSON values, read the way the Go registry reads its `config.yml`.
//!
//! The registry parses its configuration with Go's `gopkg.in/yaml.v2`; this module loads the
//! same text with `saphyr` (YAML 1.2, pure Rust) and resolves scalars as that parser does:
//! integers and floats become JSON numbers, `true`/`false` and the plain YAML 1.1 words
//! (`yes`, `no`, `on`, `off`, `y`, `n` in their usual spellings) become booleans, `~`/`null`/an
//! empty value becomes `null` (which a driver's parameters treat as absent), everything else,
//! and every quoted scalar, stays a string. Mappings become objects (keys as strings), sequences
//! arrays; anchors and aliases are resolved.

use std::borrow::Cow;

use saphyr::{Scalar, ScalarStyle, Tag, Yaml, YamlLoader};
use saphyr_parser::Parser;
use serde_json::{Map, Number, Value};

/// Why a YAML text could not be read, with the line and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct YamlError(String);

/// Loads the first document of `text` as JSON; an empty text is `null`.
pub(crate) fn load(text: &str) -> Result<Value, YamlError> {
    let mut loader: YamlLoader<'_, Yaml<'_>> = YamlLoader::default();
    // Scalars stay unresolved so that their style (plain or quoted) is known here.
    loader.early_parse(false);
    let mut parser = Parser::new_from_str(text);
    let scanned = parser.load(&mut loader, true);
    if let Some(err) = loader.error().cloned().or(scanned.err()) {
        let at = err.marker();
        return Err(YamlError(format!(
            "line {}, column {}: {}",
            at.line(),
            at.col() + 1,
            err.info()
        )));
    }
    match loader.into_documents().into_iter().next() {
        Some(doc) => to_json(&doc, ""),
        None => Ok(Value::Null),
    }
}

/// `node` as JSON; `at` is its dotted key, for errors.
fn to_json(node: &Yaml<'_>, at: &str) -> Result<Value, YamlError> {
    match node {
        Yaml::Representation(text, style, tag) => scalar(text, *style, tag.as_ref(), at),
        Yaml::Value(value) => Ok(scalar_value(value)),
        Yaml::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| to_json(item, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = key_text(key, at)?;
                let inner = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                map.insert(key, to_json(value, &inner)?);
            }
            Ok(Value::Object(map))
        }
        // A user-defined tag on a collection or scalar: the node is read as if untagged.
        Yaml::Tagged(_, inner) => to_json(inner, at),
        Yaml::Alias(_) | Yaml::BadValue => Err(YamlError(format!(
            "{}: a value that cannot be read",
            shown(at)
        ))),
    }
}

/// A mapping key as text: strings as they are, numbers and booleans as written.
fn key_text(key: &Yaml<'_>, at: &str) -> Result<String, YamlError> {
    match to_json(key, at)? {
        Value::String(s) => Ok(s),
        Value::Null => Ok("null".to_owned()),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
        Value::Array(_) | Value::Object(_) => Err(YamlError(format!(
            "{}: a mapping key must be a scalar",
            shown(at)
        ))),
    }
}

fn shown(at: &str) -> &str {
    if at.is_empty() { "the document" } else { at }
}

/// Resolves one scalar as Go's yaml.v2 does for the values a configuration holds.
fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
    at: &str,
) -> Result<Value, YamlError> {
    if style == ScalarStyle::Plain && tag.is_none() {
        if let Some(b) = yaml11_bool(text) {
            return Ok(Value::Bool(b));
        }
    }
    match Scalar::parse_from_cow_and_metadata(Cow::Borrowed(text), style, tag) {
        Some(value) => Ok(scalar_value(&value)),
        None => Err(YamlError(format!(
            "{}: {text:?} does not match its tag",
            shown(at)
        ))),
    }
}

fn scalar_value(value: &Scalar<'_>) -> Value {
    match value {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => {
            Number::from_f64(f.0).map_or_else(|| Value::String(f.0.to_string()), Value::Number)
        }
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// The booleans of YAML 1.1 that yaml.v2 resolves and YAML 1.2 does not (plain scalars only).
fn yaml11_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_resolve_as_in_the_registry() {
        let doc = load(
            "a: 10485760\nb: 1.5\nc: true\nd: yes\ne: \"yes\"\nf: ~\ng:\nh: text\n\
             i: '42'\nj: Off\nk: 0x10\nl: !!str 12\nm: [1, two]\n",
        )
        .expect("valid");
        assert_eq!(
            doc,
            json!({
                "a": 10485760, "b": 1.5, "c": true, "d": true, "e": "yes", "f": null, "g": null,
                "h": "text", "i": "42", "j": false, "k": 16, "l": "12", "m": [1, "two"],
            })
        );
    }

    #[test]
    fn nested_maps_and_aliases() {
        let doc = load("base: &b {type: client_secret, tenantid: t}\nuse: *b\n").expect("valid");
        assert_eq!(
            doc["use"],
            json!({"type": "client_secret", "tenantid": "t"})
        );
        assert_eq!(doc["use"], doc["base"]);
    }

    #[test]
    fn errors_name_the_line_or_key() {
        let err = load("storage:\n  s3:\n    bucket: [unclosed\n").expect_err("bad");
        assert!(err.to_string().starts_with("line "), "{err}");
        let err = load("a: 1\na: 2\n").expect_err("duplicate key");
        assert!(err.to_string().contains("duplicate"), "{err}");
        let err = load("storage:\n  s3:\n    chunksize: !!int many\n").expect_err("bad tag");
        assert_eq!(
            err.to_string(),
            "storage.s3.chunksize: \"many\" does not match its tag"
        );
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(load("").expect("valid"), Value::Null);
        assert_eq!(load("# only a comment\n").expect("valid"), Value::Null);
    }
}
