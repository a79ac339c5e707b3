//! Pipeline files: everything Slipway knows about `.slipway.yml` and `.travis.yml` before anything runs.
//!
//! The crate is pure: it reads bytes it is given and returns values. It does no file, network or
//! process I/O of its own, so the CLI, the runner and the webhook service all plan a file the same way.

pub mod addons;
pub mod conditions;
pub mod config;
pub mod diagnostic;
pub mod expand;
pub mod images;
pub mod imports;
pub mod lint;
pub mod notify;
pub mod placement;
pub mod plan;
pub mod planner;
pub mod schema;
pub mod spec;
pub mod yaml;

pub use planner::{DEFAULT_MAX_JOBS, PlanOptions};

/// Plans a pipeline file for one event: every stage, job, phase and deploy, with the reasons.
///
/// Errors only when the file cannot be planned at all (not YAML, empty, not a mapping, a matrix
/// over [`DEFAULT_MAX_JOBS`] jobs); every other oddity is planned the lenient way Travis did and
/// left to `lint` to report.
pub fn plan(
    file_name: &str,
    bytes: &[u8],
    ctx: &plan::Context,
) -> Result<plan::Plan, Vec<diagnostic::Diagnostic>> {
    plan_with(file_name, bytes, ctx, PlanOptions::default())
}

/// [`plan`] with options (e.g. without the request-level filters, to see Travis's job list).
pub fn plan_with(
    file_name: &str,
    bytes: &[u8],
    ctx: &plan::Context,
    options: PlanOptions,
) -> Result<plan::Plan, Vec<diagnostic::Diagnostic>> {
    let config = load_config(file_name, bytes)?;
    plan_loaded(file_name, &config, ctx, options)
}

/// Plans a loaded config, refusing a matrix over `options.max_jobs` before building any job.
fn plan_loaded(
    file_name: &str,
    config: &config::Config,
    ctx: &plan::Context,
    options: PlanOptions,
) -> Result<plan::Plan, Vec<diagnostic::Diagnostic>> {
    let size = expand::matrix_size(config);
    if let Some(refused) = planner::job_cap(file_name, &size, options.max_jobs, None) {
        return Err(vec![refused]);
    }
    Ok(planner::plan_config(file_name, config, ctx, options))
}

/// [`plan_with`] for a file with `import:`: each imported file is read through `fetch` (the
/// caller's I/O, with the build's credentials) and merged before planning. Without `import:`
/// the plan is exactly [`plan_with`]'s and `fetch` is never called.
pub fn plan_imported(
    file_name: &str,
    bytes: &[u8],
    ctx: &plan::Context,
    options: PlanOptions,
    fetch: &mut impl imports::Fetch,
) -> Result<plan::Plan, Vec<diagnostic::Diagnostic>> {
    let node = load_node(file_name, bytes)?;
    let node = imports::resolve(file_name, node, ctx, fetch).map_err(|d| vec![*d])?;
    let config = config_of(file_name, &node)?;
    plan_loaded(file_name, &config, ctx, options)
}

/// Loads and normalises a pipeline file, or says why it cannot be planned.
pub fn load_config(
    file_name: &str,
    bytes: &[u8],
) -> Result<config::Config, Vec<diagnostic::Diagnostic>> {
    config_of(file_name, &load_node(file_name, bytes)?)
}

/// Loads a pipeline file's YAML tree (with Travis's byte quirks for `.travis.yml`).
fn load_node(file_name: &str, bytes: &[u8]) -> Result<yaml::Node, Vec<diagnostic::Diagnostic>> {
    use diagnostic::{Diagnostic, Severity};
    let travis_bytes;
    let bytes =
        if is_travis_file(file_name) && !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() {
            // Travis read `.travis.yml` as binary and dropped every non-ASCII byte before parsing,
            // so job names, commands and env Travis ran were ASCII; plan the same file the same way.
            travis_bytes = bytes
                .iter()
                .copied()
                .filter(u8::is_ascii)
                .collect::<Vec<u8>>();
            &travis_bytes[..]
        } else {
            bytes
        };
    match yaml::load(bytes, yaml::Limits::default()) {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Err(vec![Diagnostic {
            severity: Severity::Error,
            code: "empty_file".to_owned(),
            file: file_name.to_owned(),
            span: None,
            key: None,
            message: "the pipeline file is empty".to_owned(),
            hint: Some("add at least a `script:` (or `language:`) key".to_owned()),
        }]),
        Err(e) => Err(vec![Diagnostic::from_load_error(file_name, &e)]),
    }
}

fn config_of(
    file_name: &str,
    node: &yaml::Node,
) -> Result<config::Config, Vec<diagnostic::Diagnostic>> {
    use diagnostic::{Diagnostic, Severity};
    config::Config::from_node(node).map_err(|e| {
        vec![Diagnostic {
            severity: Severity::Error,
            code: "invalid_root".to_owned(),
            file: file_name.to_owned(),
            span: Some(node.span),
            key: None,
            message: e.to_string(),
            hint: Some(
                "a pipeline file is a mapping such as `language: node_js` on its first line"
                    .to_owned(),
            ),
        }]
    })
}

/// True for a Travis file name (`.travis.yml`, or a corpus-style `NAME.travis.yml`), which is
/// read with Travis's own quirks; `.slipway.yml` files are read as the UTF-8 they are.
pub fn is_travis_file(file_name: &str) -> bool {
    file_name.ends_with(".travis.yml") || file_name.ends_with(".travis.yaml")
}
