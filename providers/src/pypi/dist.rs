//! Python distributions as an upload needs them: which files of `dist/` are distributions, their
//! kind and Python tag, and their core metadata (`PKG-INFO` of an sdist, `METADATA` of a wheel).

use std::io::Read;
use std::path::Path;

/// One distribution file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dist {
    pub file_name: String,
    /// `sdist`, `bdist_wheel` or `bdist_egg`.
    pub filetype: &'static str,
    /// `source` for an sdist, else the Python tag of the file name (`py3`, `cp311`).
    pub pyversion: String,
}

impl Dist {
    /// What `file_name` is, when it is a distribution.
    pub(crate) fn of(file_name: &str) -> Option<Dist> {
        let lower = file_name.to_ascii_lowercase();
        let (filetype, pyversion) = if let Some(stem) = lower.strip_suffix(".whl") {
            // name-version(-build)?-pytag-abitag-platform.whl
            let parts: Vec<&str> = stem.split('-').collect();
            if parts.len() < 5 {
                return None;
            }
            ("bdist_wheel", parts[parts.len() - 3].to_owned())
        } else if let Some(stem) = lower.strip_suffix(".egg") {
            let tag = stem.split('-').nth(2)?.to_owned();
            ("bdist_egg", tag)
        } else if [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
            .iter()
            .any(|e| lower.ends_with(e))
        {
            ("sdist", "source".to_owned())
        } else {
            return None;
        };
        Some(Dist {
            file_name: file_name.to_owned(),
            filetype,
            pyversion,
        })
    }
}

/// Core metadata: the header fields in order (a field may repeat) and the long description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub fields: Vec<(String, String)>,
    pub description: String,
}

impl Metadata {
    /// The first value of `name` (case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses the email-header format of `PKG-INFO` and `METADATA`.
    pub(crate) fn parse(text: &str) -> Metadata {
        let mut out = Metadata::default();
        let mut lines = text.lines();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation of the previous field.
                if let Some((_, v)) = out.fields.last_mut() {
                    v.push('\n');
                    v.push_str(line.trim_start());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                out.fields.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        out.description = lines.collect::<Vec<_>>().join("\n");
        if out.description.is_empty()
            && let Some(d) = out.get("Description")
        {
            out.description = d.to_owned();
        }
        out
    }
}

/// Largest metadata file read.
const MAX_METADATA: u64 = 4 << 20;

/// Reads the metadata of the distribution at `path`.
pub(crate) fn metadata(path: &Path, dist: &Dist) -> Result<Metadata, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let lower = dist.file_name.to_ascii_lowercase();
    let text = if lower.ends_with(".whl") || lower.ends_with(".egg") || lower.ends_with(".zip") {
        from_zip(file, &lower)?
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        from_tar(flate2::read::GzDecoder::new(file))?
    } else {
        return Err("Slipway reads the metadata of .tar.gz, .zip, .whl and .egg files".into());
    };
    let meta = Metadata::parse(&text);
    for required in ["Metadata-Version", "Name", "Version"] {
        if meta.get(required).is_none_or(str::is_empty) {
            return Err(format!("its metadata has no {required}"));
        }
    }
    Ok(meta)
}

/// `METADATA` (wheel), `EGG-INFO/PKG-INFO` (egg) or `NAME-VERSION/PKG-INFO` (zip sdist).
fn from_zip(file: std::fs::File, lower: &str) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let wanted = |name: &str| {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            [dir, "METADATA"] if lower.ends_with(".whl") => dir.ends_with(".dist-info"),
            ["EGG-INFO", "PKG-INFO"] => lower.ends_with(".egg"),
            [_, "PKG-INFO"] => lower.ends_with(".zip"),
            _ => false,
        }
    };
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| wanted(n))
        .ok_or("it holds no metadata file (METADATA or PKG-INFO)")?;
    let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut text = String::new();
    entry
        .take(MAX_METADATA)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

/// `NAME-VERSION/PKG-INFO` of a tar sdist.
fn from_tar(reader: impl Read) -> Result<String, String> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let parts: Vec<_> = path.components().collect();
        if parts.len() == 2 && parts[1].as_os_str() == "PKG-INFO" {
            let mut text = String::new();
            entry
                .take(MAX_METADATA)
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            return Ok(text);
        }
    }
    Err("it holds no NAME-VERSION/PKG-INFO".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_are_known_by_their_names() {
        assert_eq!(
            Dist::of("demo-1.0-py3-none-any.whl"),
            Some(Dist {
                file_name: "demo-1.0-py3-none-any.whl".into(),
                filetype: "bdist_wheel",
                pyversion: "py3".into()
            })
        );
        assert_eq!(
            Dist::of("demo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl")
                .unwrap()
                .pyversion,
            "cp311"
        );
        assert_eq!(Dist::of("demo-1.0.tar.gz").unwrap().filetype, "sdist");
        assert_eq!(Dist::of("demo-1.0.tar.gz").unwrap().pyversion, "source");
        assert_eq!(Dist::of("demo-1.0-py3.8.egg").unwrap().pyversion, "py3.8");
        assert_eq!(Dist::of("README.md"), None);
        assert_eq!(Dist::of("demo.whl"), None);
    }

    #[test]
    fn metadata_headers_repeat_continue_and_end_at_the_description() {
        let m = Metadata::parse(
            "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nClassifier: A\nClassifier: B\nLicense: line one\n        line two\n\n# Demo\n\nLong text.",
        );
        assert_eq!(m.get("name"), Some("demo"));
        assert_eq!(m.get("License"), Some("line one\nline two"));
        assert_eq!(
            m.fields.iter().filter(|(k, _)| k == "Classifier").count(),
            2
        );
        assert_eq!(m.description, "# Demo\n\nLong text.");
    }
}
