//! Reading a request body into its `k8s-openapi` type the way an API server reads it: a body
//! holding a field the type does not know is refused, with the field named, rather than
//! silently dropped. The stand-in API servers of the workspace's tests (the executor's pods, the
//! deploy providers' applies) check every body with it. Test support: `testing` feature only.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `bytes` read into `T`; an error names each field `T` does not have.
///
/// # Errors
/// When `bytes` is not JSON, does not read as `T`, or holds fields `T` drops.
pub fn read<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, String> {
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    read_value(&raw)
}

/// [`read`] for a body already parsed as JSON.
///
/// # Errors
/// When `raw` does not read as `T` or holds fields `T` drops.
pub fn read_value<T: DeserializeOwned + Serialize>(raw: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(raw.clone())
        .map_err(|e| format!("does not read as {}: {e}", std::any::type_name::<T>()))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    dropped(raw, &back, "", &mut unknown);
    if unknown.is_empty() {
        Ok(typed)
    } else {
        Err(format!("unknown field(s): {}", unknown.join(", ")))
    }
}

/// Paths in `raw` that the typed round trip `back` lost.
fn dropped(raw: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, back) {
        (Value::Object(r), Value::Object(b)) => {
            for (k, v) in r {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => dropped(v, bv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(r), Value::Array(b)) => {
            for (i, (rv, bv)) in r.iter().zip(b).enumerate() {
                dropped(rv, bv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn a_field_the_type_does_not_know_is_named() {
        let err = read::<Pod>(br#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"i","colour":"red"}]}}"#)
            .unwrap_err();
        assert_eq!(err, "unknown field(s): spec.containers[0].colour");
        assert!(read::<Pod>(br#"{"spec":{"containers":"nope"}}"#).is_err());
        assert!(read::<Pod>(br#"{"metadata":{"name":"p"}}"#).is_ok());
    }
}
