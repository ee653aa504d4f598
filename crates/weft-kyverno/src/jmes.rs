//! JMESPath as Kyverno runs it: the standard functions and the few of
//! Kyverno's own that policies for meshes use.

use std::sync::OnceLock;

use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{Rcvar, Runtime, Variable};
use serde_json::Value;

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, thiserror::Error)]
#[error("JMESPath `{expression}`: {reason}")]
pub struct JmesError {
    pub expression: String,
    pub reason: String,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let mut rt = Runtime::new();
        rt.register_builtin_functions();
        register_kyverno_functions(&mut rt);
        rt
    })
}

/// Evaluates `expression` over `data`.
pub fn search(expression: &str, data: &Value) -> Result<Value, JmesError> {
    let err = |reason: String| JmesError {
        expression: expression.to_owned(),
        reason,
    };
    let compiled = runtime()
        .compile(expression)
        .map_err(|e| err(e.to_string()))?;
    let found = compiled.search(data).map_err(|e| err(e.to_string()))?;
    serde_json::to_value(&*found).map_err(|e| err(e.to_string()))
}

fn string_fn(
    rt: &mut Runtime,
    name: &str,
    inputs: Vec<ArgumentType>,
    f: impl Fn(&[String]) -> Variable + Send + Sync + 'static,
) {
    rt.register_function(
        name,
        Box::new(CustomFunction::new(
            Signature::new(inputs, None),
            Box::new(move |args: &[Rcvar], _ctx| {
                let strings: Vec<String> = args
                    .iter()
                    .map(|a| a.as_string().cloned().unwrap_or_default())
                    .collect();
                Ok(Rcvar::new(f(&strings)))
            }),
        )),
    );
}

fn register_kyverno_functions(rt: &mut Runtime) {
    use ArgumentType::String as S;
    string_fn(rt, "to_upper", vec![S], |a| {
        Variable::String(a[0].to_uppercase())
    });
    string_fn(rt, "to_lower", vec![S], |a| {
        Variable::String(a[0].to_lowercase())
    });
    string_fn(rt, "trim", vec![S, S], |a| {
        let cut: Vec<char> = a[1].chars().collect();
        Variable::String(a[0].trim_matches(cut.as_slice()).to_owned())
    });
    string_fn(rt, "trim_prefix", vec![S, S], |a| {
        Variable::String(a[0].strip_prefix(a[1].as_str()).unwrap_or(&a[0]).to_owned())
    });
    string_fn(rt, "equal_fold", vec![S, S], |a| {
        Variable::Bool(a[0].to_lowercase() == a[1].to_lowercase())
    });
    string_fn(rt, "replace_all", vec![S, S, S], |a| {
        Variable::String(a[0].replace(a[1].as_str(), &a[2]))
    });
    string_fn(rt, "split", vec![S, S], |a| {
        Variable::Array(
            a[0].split(a[1].as_str())
                .map(|s| Rcvar::new(Variable::String(s.to_owned())))
                .collect(),
        )
    });
    string_fn(rt, "regex_match", vec![S, S], |a| {
        Variable::Bool(regex::Regex::new(&a[0]).is_ok_and(|re| re.is_match(&a[1])))
    });
    string_fn(rt, "pattern_match", vec![S, S], |a| {
        Variable::Bool(crate::wildcard::matches(&a[0], &a[1]))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standard_expressions_and_kyverno_functions() {
        let pod = json!({"spec": {"containers": [{"name": "a"}], "initContainers": null}});
        assert_eq!(
            search("spec.[initContainers, containers][].name", &pod).unwrap(),
            json!(["a"])
        );
        assert_eq!(
            search("spec.nothing.add[] || `[]`", &pod).unwrap(),
            json!([])
        );
        assert_eq!(
            search("contains('a*b', '*')", &json!({})).unwrap(),
            json!(true)
        );
        assert_eq!(
            search("to_upper('strict')", &json!({})).unwrap(),
            json!("STRICT")
        );
        assert!(search("spec.[", &pod).is_err());
    }
}
