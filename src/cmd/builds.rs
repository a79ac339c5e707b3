//! `slipway builds`: list a server's recent builds, or show one with its jobs.

use clap::Args as ClapArgs;

/// Arguments of `slipway builds`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Show this build and its jobs instead of the list.
    pub id: Option<i64>,
    /// Only this repository (`owner/name`).
    #[arg(long)]
    pub repo: Option<String>,
    /// How many builds to list.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[command(flatten)]
    pub server: super::remote::Server,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Prints builds.
pub fn run(args: Args) -> anyhow::Result<()> {
    let client = args.server.client()?;
    if let Some(id) = args.id {
        let v = client.build(id)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let b = &v["build"];
        println!(
            "build #{} {} {} ({})",
            b["id"],
            text(&b["repo"]),
            text(&b["state"]),
            text(&b["reason"])
        );
        for j in v["jobs"].as_array().into_iter().flatten() {
            println!(
                "  job {:<6} {:<10} {:<10} {}",
                j["id"],
                text(&j["stage"]),
                text(&j["state"]),
                text(&j["name"])
            );
        }
        return Ok(());
    }
    let v = client.builds(args.repo.as_deref(), args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for b in v["builds"].as_array().into_iter().flatten() {
        let ctx = &b["spec"]["context"];
        let what = match ctx["pull_request"].as_u64() {
            Some(n) => format!("PR #{n}"),
            None => text(&ctx["branch"]).to_string(),
        };
        println!(
            "#{:<6} {:<10} {:<24} {:<16} {}",
            b["id"],
            text(&b["state"]),
            text(&b["repo"]),
            what,
            text(&b["spec"]["head_sha"])
                .chars()
                .take(8)
                .collect::<String>()
        );
    }
    Ok(())
}
