//! The copy on disk of what was last applied from etcd, so a gateway restarted while etcd is down starts
//! from it instead of from nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::assemble::Resources;

/// The copy's document: etcd's values as they are, not parsed into a tree and printed again, which
/// at ten thousand resources cost the change that wrote it more than applying it.
#[derive(Serialize)]
struct Document<'a> {
    prefix: &'a str,
    revision: i64,
    resources: BTreeMap<&'a str, Item<'a>>,
}

/// A value as etcd holds it: JSON in place, anything else (which the gateway skipped) as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Json(&'a RawValue),
    Text(Cow<'a, str>),
}

/// Writes `resources` at `revision` to `path`, whole or not at all (a temporary file renamed over it).
pub fn write(
    path: &Path,
    prefix: &str,
    revision: i64,
    resources: &Resources,
) -> std::io::Result<()> {
    let resources = resources
        .iter()
        .map(|(key, value)| {
            let item = match std::str::from_utf8(value)
                .ok()
                .and_then(|text| serde_json::from_str::<&RawValue>(text).ok())
            {
                Some(json) => Item::Json(json),
                None => Item::Text(String::from_utf8_lossy(value)),
            };
            (key.as_str(), item)
        })
        .collect();
    let document = Document {
        prefix,
        revision,
        resources,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(
        &temporary,
        serde_json::to_vec(&document).unwrap_or_default(),
    )?;
    std::fs::rename(&temporary, path)
}

/// The resources and revision the copy at `path` holds, when it is there, readable and for `prefix`.
pub fn read(path: &Path, prefix: &str) -> Option<(i64, Resources)> {
    let document: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if document["prefix"] != prefix {
        return None;
    }
    let revision = document["revision"].as_i64()?;
    let resources = document["resources"]
        .as_object()?
        .iter()
        .map(|(key, value)| {
            let bytes = match value {
                Value::String(text) => text.clone().into_bytes(),
                other => serde_json::to_vec(other).unwrap_or_default(),
            };
            (key.clone(), bytes)
        })
        .collect();
    Some((revision, resources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_reads_back_as_written_and_only_for_its_prefix() {
        let dir = std::env::temp_dir().join(format!("floodgate-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("copy.json");
        let mut resources = Resources::new();
        resources.insert("routes/a".into(), br#"{"paths":["/a"]}"#.to_vec());
        resources.insert("routes/garbled".into(), b"{not json".to_vec());
        write(&path, "/fg", 42, &resources).unwrap();
        let (revision, back) = read(&path, "/fg").expect("read");
        assert_eq!(revision, 42);
        assert_eq!(back["routes/garbled"], b"{not json");
        let a: Value = serde_json::from_slice(&back["routes/a"]).unwrap();
        assert_eq!(a["paths"][0], "/a");
        assert!(read(&path, "/other").is_none());
        assert!(read(&dir.join("missing.json"), "/fg").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
