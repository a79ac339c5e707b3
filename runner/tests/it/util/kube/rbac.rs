//! The Role docs/scale-out.md gives Slipway's processes over job pods, and what each request the
//! executor sends needs of it: the stand-in's recorded requests are checked against it, so the
//! page cannot drift from what the executor does.

use k8s_openapi::api::rbac::v1::Role;

/// The Role of docs/scale-out.md.
pub fn documented_role() -> Role {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/scale-out.md"))
            .unwrap();
    let mut block: Option<String> = None;
    for line in page.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```yaml") => block = Some(String::new()),
            (Some(text), "```") => {
                for doc in text.split("\n---\n") {
                    let node = slipway_pipelines::yaml::load(doc.as_bytes(), Default::default())
                        .unwrap()
                        .unwrap();
                    let json = node.to_json();
                    if json["kind"] == "Role" {
                        return serde_json::from_value(json).unwrap();
                    }
                }
                block = None;
            }
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    panic!("docs/scale-out.md has no Role")
}

/// The resource (with its subresource) and the verbs a namespaced core API request needs;
/// `None` for a path outside them (`/version`). A WebSocket upgrade to `attach` or `exec` is
/// authorized as `create` from Kubernetes 1.30 and as `get` before: it needs both to work on both.
pub fn needs(method: &str, uri: &str) -> Option<(String, Vec<&'static str>)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    Some(match (method, parts.as_slice()) {
        ("GET", [res]) if watch => (res.to_string(), vec!["watch"]),
        ("GET", [res]) => (res.to_string(), vec!["list"]),
        ("POST", [res]) => (res.to_string(), vec!["create"]),
        ("DELETE", [res]) => (res.to_string(), vec!["deletecollection"]),
        ("GET", [res, _]) => (res.to_string(), vec![if watch { "watch" } else { "get" }]),
        ("DELETE", [res, _]) => (res.to_string(), vec!["delete"]),
        ("PUT", [res, _]) => (res.to_string(), vec!["update"]),
        ("PATCH", [res, _]) => (res.to_string(), vec!["patch"]),
        (_, [res, _, sub @ ("attach" | "exec" | "portforward")]) => {
            (format!("{res}/{sub}"), vec!["create", "get"])
        }
        ("GET", [res, _, sub]) => (format!("{res}/{sub}"), vec!["get"]),
        (_, [res, _, sub]) => (format!("{res}/{sub}"), vec!["create"]),
        _ => (path.to_string(), vec!["?"]),
    })
}

/// Whether `role` grants every verb `request` needs.
pub fn allows(role: &Role, method: &str, uri: &str) -> bool {
    let Some((resource, verbs)) = needs(method, uri) else {
        return true;
    };
    let rules = role.rules.as_deref().unwrap_or_default();
    verbs.iter().all(|verb| {
        rules.iter().any(|r| {
            let has = |list: &Option<Vec<String>>, want: &str| {
                list.as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| x == want || x == "*")
            };
            has(&r.api_groups, "")
                && has(&r.resources, &resource)
                && r.verbs.iter().any(|v| v == verb || v == "*")
        })
    })
}

impl super::StandIn {
    /// Checks every request received so far against the documented Role.
    pub fn assert_the_documented_role_allows_every_request(&self) {
        let role = documented_role();
        let requests = self.requests.lock().unwrap().clone();
        let lines: Vec<(String, String)> = requests
            .iter()
            .filter_map(|r| {
                let first = r.lines().next()?;
                let (method, uri) = first.split_once(' ')?;
                Some((method.to_string(), uri.to_string()))
            })
            .collect();
        assert!(
            lines.iter().any(|(m, u)| needs(m, u).is_some()),
            "no API request was made"
        );
        let refused: Vec<String> = lines
            .iter()
            .filter(|(m, u)| !allows(&role, m, u))
            .map(|(m, u)| format!("{m} {u}: needs {:?}", needs(m, u)))
            .collect();
        assert!(
            refused.is_empty(),
            "docs/scale-out.md's Role does not allow: {refused:#?}"
        );
    }
}
