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
//! keeps working. Installing is idempotent (one `iptables -S` listing per family; what it lacks is
//! checked with `iptables -C` before `-I`), needs root (or
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

/// Every rule `install_family` puts in place for `f`, as `(chain, rule, first)`, and the chain
/// jobs' forwarded traffic passes (`DOCKER-USER`, or `FORWARD` for IPv6 without Docker's rules).
fn wanted(f: &Family, ports: &[u16], forward: &str) -> Vec<(String, Vec<String>, bool)> {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for m in f.link_local {
        let mut rule = owned(m);
        rule.extend(owned(&["-j", "REJECT"]));
        out.push((FORWARD_CHAIN.to_owned(), rule.clone(), false));
        out.push((HOST_CHAIN.to_owned(), rule, false));
    }
    for port in ports {
        let rule = owned(&["-p", "tcp", "--dport", &port.to_string(), "-j", "REJECT"]);
        out.push((HOST_CHAIN.to_owned(), rule, false));
    }
    let prefix = format!("{BRIDGE_PREFIX}+");
    for bridge in [prefix.as_str(), DEFAULT_BRIDGE] {
        out.push((
            forward.to_owned(),
            owned(&["-i", bridge, "-j", FORWARD_CHAIN]),
            true,
        ));
        out.push((
            "INPUT".to_owned(),
            owned(&["-i", bridge, "-j", HOST_CHAIN]),
            true,
        ));
    }
    out
}

/// A rule as `iptables -S` lists it, back in the words it was added with: the listing adds the
/// implied `-m tcp`/`-m udp` and REJECT's default `--reject-with`, which say nothing more.
fn as_added(listed: &str) -> Option<(String, Vec<String>)> {
    let mut words = listed.split_whitespace();
    if words.next()? != "-A" {
        return None;
    }
    let chain = words.next()?.to_owned();
    let mut rule = Vec::new();
    let mut words = words.peekable();
    while let Some(w) = words.next() {
        match w {
            "-m" if matches!(words.peek(), Some(&"tcp" | &"udp")) => {
                words.next();
            }
            "--reject-with" => {
                words.next();
            }
            _ => rule.push(w.to_owned()),
        }
    }
    Some((chain, rule))
}

/// Whether every chain and rule is in place already, read from one listing of the filter table
/// (`iptables -S`): a run on a machine that has them (every run after the first) then costs one
/// process per family instead of one per rule, which on a busy machine was a few hundred
/// milliseconds before each `slipway run`. Anything not found exactly goes the checked way.
fn all_in_place(f: &Family, ports: &[u16]) -> bool {
    let Ok(out) = Command::new(f.tool).args(["-w", "-S"]).output() else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let chains: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .collect();
    let rules: Vec<(String, Vec<String>)> = listing.lines().filter_map(as_added).collect();
    let forward = if chains.contains(&"DOCKER-USER") {
        "DOCKER-USER"
    } else if f.tool == IPV6.tool {
        "FORWARD"
    } else {
        return false;
    };
    chains.contains(&FORWARD_CHAIN)
        && chains.contains(&HOST_CHAIN)
        && wanted(f, ports, forward)
            .iter()
            .all(|(chain, rule, _)| rules.iter().any(|(c, r)| c == chain && r == rule))
}

fn install_family(f: &Family, ports: &[u16]) -> Result<(), String> {
    if all_in_place(f, ports) {
        return Ok(());
    }
    ensure_chain(f.tool, FORWARD_CHAIN)?;
    ensure_chain(f.tool, HOST_CHAIN)?;
    // Docker's own rules accept a bridge's traffic in FORWARD; only DOCKER-USER comes first, and
    // Docker keeps it first. Without Docker's IPv6 rules, FORWARD's top is first.
    let forward = if run(f.tool, &["-w", "-n", "-L", "DOCKER-USER"]).is_ok() {
        "DOCKER-USER"
    } else if f.tool == IPV6.tool {
        "FORWARD"
    } else {
        return Err("the DOCKER-USER chain is missing (is Docker managing iptables?)".into());
    };
    for (chain, rule, first) in wanted(f, ports, forward) {
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        ensure(f.tool, &chain, &rule, first)?;
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
    // The two families' tools run side by side: each is a process or more on the way to a job's
    // first container.
    let results = std::thread::scope(|scope| {
        let v6 = scope.spawn(|| install_family(&IPV6, ports));
        let v4 = install_family(&IPV4, ports);
        [
            (IPV4, v4),
            (
                IPV6,
                v6.join()
                    .unwrap_or_else(|_| Err("the ip6tables check panicked".into())),
            ),
        ]
    });
    for (f, result) in results {
        match result {
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
    fn a_listed_rule_reads_back_as_added_and_only_its_implied_words_are_dropped() {
        assert_eq!(
            as_added(
                "-A SLIPWAY-JOBS-HOST -p tcp -m tcp --dport 8080 -j REJECT --reject-with icmp-port-unreachable"
            ),
            Some((
                HOST_CHAIN.to_owned(),
                ["-p", "tcp", "--dport", "8080", "-j", "REJECT"]
                    .map(String::from)
                    .to_vec()
            ))
        );
        // A narrower rule (TCP only) is not the rule for every protocol.
        let narrower = as_added("-A SLIPWAY-JOBS -d 169.254.0.0/16 -p tcp -j REJECT").unwrap();
        let wanted = wanted(&IPV4, &[], "DOCKER-USER");
        assert!(
            !wanted
                .iter()
                .any(|(c, r, _)| *c == narrower.0 && *r == narrower.1)
        );
        assert!(wanted.iter().any(|(c, r, _)| {
            c == FORWARD_CHAIN
                && *r
                    == ["-d", "169.254.0.0/16", "-j", "REJECT"]
                        .map(String::from)
                        .to_vec()
        }));
        assert_eq!(as_added("-N SLIPWAY-JOBS"), None);
    }

    #[test]
    fn bridge_names_fit_linux_and_carry_the_prefix_the_rules_match() {
        let name = bridge_name("l1a2b3c4-12");
        assert!(name.len() <= 15, "{name}");
        assert!(name.starts_with(BRIDGE_PREFIX));
        assert_ne!(name, bridge_name("l1a2b3c4-13"));
    }
}
