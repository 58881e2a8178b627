//! `driver`: the selected driver and its parameters, secrets masked, without connecting.

use serde_json::{Map, Value, json};

use crate::cli::DriverArgs;
use crate::exit::CliError;
use crate::output;
use crate::select::Selection;

/// Parameter keys (lower case) whose values are not shown when they contain one of these.
const SECRET_WORDS: [&str; 5] = [
    "secret",
    "accountkey",
    "token",
    "password",
    "connectionstring",
];

/// What a masked value reads as.
const MASK: &str = "********";

/// Runs `driver`.
pub(crate) fn run(selection: &Selection, args: &DriverArgs) -> Result<(), CliError> {
    let parameters = mask(&Value::Object(
        selection
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ));
    let builtin = storagedriver_factory::default_registry()
        .names()
        .contains(&selection.driver);
    if args.json {
        return output::print_json(&json!({
            "driver": selection.driver,
            "builtin": builtin,
            "source": selection.source,
            "parameters": parameters,
        }));
    }
    let kind = if builtin {
        "built in".to_owned()
    } else {
        format!(
            "the executable {} on PATH",
            storagedriver_factory::executable_name(&selection.driver)
        )
    };
    let mut text = format!(
        "driver      {} ({kind})\nsource      {}\n",
        selection.driver, selection.source
    );
    let mut lines = Vec::new();
    flatten("", &parameters, &mut lines);
    if lines.is_empty() {
        text.push_str("parameters  (none)\n");
    }
    for (i, line) in lines.iter().enumerate() {
        let label = if i == 0 { "parameters" } else { "" };
        text.push_str(&format!("{label:<10}  {line}\n"));
    }
    output::print_text(&text)
}

/// `value` with every secret-looking parameter's value replaced by [`MASK`].
fn mask(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lower = key.to_ascii_lowercase();
                    let secret = SECRET_WORDS.iter().any(|w| lower.contains(w));
                    let shown = if secret && !value.is_null() && !value.is_object() {
                        Value::String(MASK.to_owned())
                    } else {
                        mask(value)
                    };
                    (key.clone(), shown)
                })
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// `key = value` lines, nested objects as dotted keys.
fn flatten(prefix: &str, value: &Value, lines: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (key, inner) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, inner, lines);
            }
        }
        Value::String(s) => lines.push(format!("{prefix} = {s}")),
        other => lines.push(format!("{prefix} = {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let masked = mask(&json!({
            "accesskey": "AKIA", "secretkey": "s", "sessiontoken": "t", "bucket": "b",
            "accountkey": "k", "sastoken": "sv=1", "connectionstring": "AccountKey=x",
            "credentials": {"type": "client_secret", "secret": "x", "clientid": "c"},
        }));
        assert_eq!(
            masked,
            json!({
                "accesskey": "AKIA", "secretkey": MASK, "sessiontoken": MASK, "bucket": "b",
                "accountkey": MASK, "sastoken": MASK, "connectionstring": MASK,
                "credentials": {"type": "client_secret", "secret": MASK, "clientid": "c"},
            })
        );
    }

    #[test]
    fn flattened_lines() {
        let mut lines = Vec::new();
        flatten("", &json!({"a": "x", "b": {"c": 1}, "d": {}}), &mut lines);
        assert_eq!(lines, ["a = x", "b.c = 1", "d = {}"]);
    }
}
