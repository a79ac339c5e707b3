//! Keeps jobs away from link-local addresses and from the server's own ports.
//!
//! A cloud machine's metadata service answers on a link-local address (169.254.169.254, and
//! fe80::a9fe:a9fe) and hands out the machine's own credentials to whoever asks; the server's own
//! ports serve its API. A job is anyone's code when it comes from a fork, so the runner refuses
//! both with packet-filter rules on the networks its jobs use:
//!
//! - every job network the runner creates has a bridge named `slw…` ([`bridge_name`]): untrusted
//!   builds and jobs with services get one each;
//! - trusted jobs without services use Docker's default bridge (`docker0`): a network of their own
//!   would cost each job about 100 ms (the engine's resolver set-up), so the default bridge gets
//!   the same rules — which then also apply to other containers on it.
//!
//! Two chains of the filter table hold the rules, for IPv4 and IPv6: `SLIPWAY-JOBS`, jumped to
//! from Docker's `DOCKER-USER` chain (forwarded traffic: refuse link-local destinations), and
//! `SLIPWAY-JOBS-HOST`, jumped to from `INPUT` (traffic to this machine: refuse link-local
//! destinations and the server's ports). IPv6 refuses only TCP and UDP, so neighbour discovery
//! keeps working. Installing is idempotent (`iptables -C` before `-I`), needs root (or
//! `CAP_NET_ADMIN`) and the `iptables` command; what could not be put in place is reported, and
//! said at start-up by `slipway serve` and `slipway run`.

use std::process::Command;

/// Prefix of the bridge interface of every job network the runner creates.
pub const BRIDGE_PREFIX: &str = "slw";

/// The chain for traffic jobs send through this machine.
pub const FORWARD_CHAIN: &str = "SLIPWAY-JOBS";
/// The chain for traffic jobs send to this machine itself.
pub const HOST_CHAIN: &str = "SLIPWAY-JOBS-HOST";

/// Docker's default bridge, which trusted jobs without services use.
pub const DEFAULT_BRIDGE: &str = "docker0";

/// The bridge interface name of a job's network: at most 15 bytes, as Linux requires.
pub fn bridge_name(job_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(job_id.as_bytes());
    format!("{BRIDGE_PREFIX}{}", &hex::encode(hash)[..12])
}

/// What [`install`] put in place and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardReport {
    /// Rules in force, in words.
    pub enforced: Vec<String>,
    /// What is not enforced, and why.
    pub not_enforced: Vec<String>,
}

/// One address family's tool and the link-local rule's match.
struct Family {
    tool: &'static str,
    name: &'static str,
    link_local: &'static [&'static [&'static str]],
}

const IPV4: Family = Family {
    tool: "iptables",
    name: "IPv4",
    link_local: &[&["-d", "169.254.0.0/16"]],
};

const IPV6: Family = Family {
    tool: "ip6tables",
    name: "IPv6",
    link_local: &[
        &["-d", "fe80::/10", "-p", "tcp"],
        &["-d", "fe80::/10", "-p", "udp"],
    ],
};

fn run(tool: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!("{tool} cannot be run: {e}")),
    }
}

/// Adds `rule` to `chain` unless it is there already (at the top with `first`).
fn ensure(tool: &str, chain: &str, rule: &[&str], first: bool) -> Result<(), String> {
    let mut check = vec!["-w", "-C", chain];
    check.extend_from_slice(rule);
    if run(tool, &check).is_ok() {
        return Ok(());
    }
    let mut add = if first {
        vec!["-w", "-I", chain, "1"]
    } else {
        vec!["-w", "-A", chain]
    };
    add.extend_from_slice(rule);
    run(tool, &add)
}

fn ensure_chain(tool: &str, chain: &str) -> Result<(), String> {
    if run(tool, &["-w", "-n", "-L", chain]).is_ok() {
        return Ok(());
    }
    run(tool, &["-w", "-N", chain])
}

fn install_family(f: &Family, ports: &[u16]) -> Result<(), String> {
    ensure_chain(f.tool, FORWARD_CHAIN)?;
    ensure_chain(f.tool, HOST_CHAIN)?;
    for m in f.link_local {
        let mut rule = m.to_vec();
        rule.extend(["-j", "REJECT"]);
        ensure(f.tool, FORWARD_CHAIN, &rule, false)?;
        ensure(f.tool, HOST_CHAIN, &rule, false)?;
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    for port in &ports {
        ensure(
            f.tool,
            HOST_CHAIN,
            &["-p", "tcp", "--dport", port, "-j", "REJECT"],
            false,
        )?;
    }
    // Docker's own rules accept a bridge's traffic in FORWARD; only DOCKER-USER comes first, and
    // Docker keeps it first. Without Docker's IPv6 rules, FORWARD's top is first.
    let forward = if run(f.tool, &["-w", "-n", "-L", "DOCKER-USER"]).is_ok() {
        "DOCKER-USER"
    } else if f.tool == IPV6.tool {
        "FORWARD"
    } else {
        return Err("the DOCKER-USER chain is missing (is Docker managing iptables?)".into());
    };
    let prefix = format!("{BRIDGE_PREFIX}+");
    for bridge in [prefix.as_str(), DEFAULT_BRIDGE] {
        ensure(f.tool, forward, &["-i", bridge, "-j", FORWARD_CHAIN], true)?;
        ensure(f.tool, "INPUT", &["-i", bridge, "-j", HOST_CHAIN], true)?;
    }
    Ok(())
}

/// Puts the rules in place for the job networks, refusing link-local addresses and `ports` (the
/// server's own, when it listens beyond loopback, which jobs cannot reach anyway).
pub fn install(ports: &[u16]) -> GuardReport {
    let mut report = GuardReport::default();
    let what = if ports.is_empty() {
        "link-local addresses".to_string()
    } else {
        format!(
            "link-local addresses and this server's port{} {}",
            if ports.len() == 1 { "" } else { "s" },
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for f in [IPV4, IPV6] {
        match install_family(&f, ports) {
            Ok(()) => report
                .enforced
                .push(format!("{}: jobs cannot reach {what}", f.name)),
            Err(why) => report.not_enforced.push(format!(
                "{}: jobs may reach {what}, because the {} rules could not be put in place: {why}",
                f.name, f.tool
            )),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_linux_and_carry_the_prefix_the_rules_match() {
        let name = bridge_name("l1a2b3c4-12");
        assert!(name.len() <= 15, "{name}");
        assert!(name.starts_with(BRIDGE_PREFIX));
        assert_ne!(name, bridge_name("l1a2b3c4-13"));
    }
}
