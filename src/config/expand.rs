//! `${VAR}` / `${VAR:-default}` expansion of every string in a TOML document.

use crate::error::{Result, RiftError};

/// Expands environment variables in every string value of `value`, in place.
/// `file` and the key path are used for error messages.
pub fn expand_env(value: &mut toml::Value, file: &str) -> Result<()> {
    expand_at(value, file, &mut String::new())
}

fn expand_at(value: &mut toml::Value, file: &str, path: &mut String) -> Result<()> {
    match value {
        toml::Value::String(s) if s.contains('$') => {
            let expanded = shellexpand::env(s.as_str()).map_err(|e| {
                RiftError::config(
                    file,
                    path.clone(),
                    format!(
                        "environment variable `{}` is not set and has no `:-default`",
                        e.var_name
                    ),
                )
            })?;
            *s = expanded.into_owned();
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                expand_at(item, file, path)?;
                path.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                expand_at(item, file, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_defaults_and_set_variables() {
        std::env::set_var("RIFT_TEST_EXPAND_SET", "kafka-1:9092");
        let mut doc: toml::Value = toml::from_str(
            r#"
            # ${NOT_EXPANDED_IN_COMMENTS}
            a = "${RIFT_TEST_EXPAND_SET}"
            b = "${RIFT_TEST_EXPAND_UNSET:-./lake}"
            c = ["x-${RIFT_TEST_EXPAND_SET}"]
            "#,
        )
        .unwrap();
        expand_env(&mut doc, "t.toml").unwrap();
        assert_eq!(doc["a"].as_str(), Some("kafka-1:9092"));
        assert_eq!(doc["b"].as_str(), Some("./lake"));
        assert_eq!(doc["c"][0].as_str(), Some("x-kafka-1:9092"));
    }

    #[test]
    fn unset_variable_without_default_names_the_key() {
        let mut doc: toml::Value = toml::from_str("[sinks.lake]\nroot = \"${RIFT_TEST_EXPAND_NEVER_SET}\"").unwrap();
        let err = expand_env(&mut doc, "t.toml").unwrap_err().to_string();
        assert!(err.contains("sinks.lake.root"), "{err}");
        assert!(err.contains("RIFT_TEST_EXPAND_NEVER_SET"), "{err}");
    }
}
