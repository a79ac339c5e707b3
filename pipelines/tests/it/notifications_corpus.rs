//! `notifications:` of the shared corpus read as Travis's config processor reads them: for every
//! file, the entries of each channel Slipway sends to (`email`, `slack`, `webhooks`, `irc`) are
//! those of Travis's normalised config, in order, with the same targets, switches and
//! frequencies; files Travis gives no notifications give none.

use serde_json::Value;
use slipway_pipelines::plan::{Frequency, Notification};

const CHANNELS: &[&str] = &["email", "slack", "webhooks", "irc"];

fn frequency(n: &Notification, key: &str) -> Frequency {
    match key {
        "on_success" => n.on.success,
        "on_failure" => n.on.failure,
        "on_start" => n.on.start,
        "on_cancel" => n.on.cancel,
        _ => n.on.error,
    }
}

fn target_count(entry: &Value) -> usize {
    ["recipients", "rooms", "urls", "channels"]
        .iter()
        .find_map(|k| entry.get(*k))
        .map_or(0, |v| v.as_array().map_or(1, Vec::len))
}

#[test]
fn notifications_match_travis_on_the_corpus() {
    let Some(shared) = crate::util::shared_dir() else {
        return;
    };
    let jsonl = std::fs::read_to_string(shared.join("corpus/expected/travis.jsonl")).unwrap();
    let (mut files, mut entries) = (0, 0);
    let mut problems = Vec::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let file = v["file"].as_str().unwrap();
        let bytes = std::fs::read(shared.join("corpus/travis").join(file)).unwrap();
        let mut ctx = crate::util::push("master");
        ctx.repo = v["repo_slug"].as_str().unwrap_or("owner/repo").to_owned();
        let Ok(plan) = slipway_pipelines::plan(file, &bytes, &ctx) else {
            continue;
        };
        let travis = &v["config"]["notifications"];
        for channel in CHANNELS {
            let theirs = travis[*channel].as_array().cloned().unwrap_or_default();
            let ours: Vec<&Notification> = plan
                .notifications
                .iter()
                .filter(|n| n.channel.name() == *channel)
                .collect();
            if theirs.len() != ours.len() {
                problems.push(format!(
                    "{file}: {channel}: Travis has {} entries, Slipway {}",
                    theirs.len(),
                    ours.len()
                ));
                continue;
            }
            for (t, o) in theirs.iter().zip(&ours) {
                entries += 1;
                let off = t["enabled"] == Value::Bool(false);
                if off == o.decision.included
                    || (off && !o.decision.reason.contains("enabled: false"))
                {
                    problems.push(format!(
                        "{file}: {channel}: enabled {t} vs {:?}",
                        o.decision
                    ));
                }
                if target_count(t) != o.channel.targets().len() {
                    problems.push(format!("{file}: {channel}: targets {t} vs {:?}", o.channel));
                }
                for key in [
                    "on_success",
                    "on_failure",
                    "on_start",
                    "on_cancel",
                    "on_error",
                ] {
                    if let Some(f) = t[key].as_str()
                        && frequency(o, key).as_str() != f
                    {
                        problems.push(format!("{file}: {channel}.{key}: {f} vs {:?}", o.on));
                    }
                }
                if let Some(cond) = t["if"].as_str()
                    && !o.decision.reason.starts_with("if:")
                {
                    problems.push(format!(
                        "{file}: {channel}: if {cond} not decided: {:?}",
                        o.decision
                    ));
                }
            }
        }
        files += usize::from(travis.is_object());
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        files >= 30 && entries >= 35,
        "{files} files, {entries} entries"
    );
}

#[test]
fn an_if_on_a_notification_is_decided_per_event() {
    // OpenRA notifies IRC only from its own repository.
    let Some(shared) = crate::util::shared_dir() else {
        return;
    };
    let bytes = std::fs::read(shared.join("corpus/travis/OpenRA__OpenRA.travis.yml")).unwrap();
    let mut ctx = crate::util::push("master");
    ctx.repo = "OpenRA/OpenRA".into();
    let plan = slipway_pipelines::plan("OpenRA.travis.yml", &bytes, &ctx).unwrap();
    assert!(
        plan.notifications[0].decision.included,
        "{:?}",
        plan.notifications
    );
    ctx.repo = "someone/OpenRA".into();
    let plan = slipway_pipelines::plan("OpenRA.travis.yml", &bytes, &ctx).unwrap();
    assert!(!plan.notifications[0].decision.included);
    assert_eq!(
        plan.notifications[0].decision.reason,
        "if: repo = OpenRA/OpenRA is false"
    );
}
