//! The `[[alert]]` tables of the configuration file, validated into
//! [`zzping_lib::alert::Rule`]s.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zzping_lib::alert::{HostMatch, Rule, When};

/// Longest `for_s`, `window_s`, `clear_s` and `min_interval_s`: one day.
pub const MAX_ALERT_S: f64 = 86_400.0;
/// Default `min_interval_s`: at most one firing command per rule per minute.
pub const DEFAULT_MIN_INTERVAL_S: f64 = 60.0;
/// The `host` value of a rule on every host at once.
pub const ALL_HOSTS: &str = "all";

/// One `[[alert]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The rule's name (unique; in logs, metrics and `ZZPING_ALERT_NAME`).
    pub name: String,
    /// `outage`, `loss` or `p95`.
    pub when: String,
    /// A host label, or `all` (every host at once); absent (and no `role`): every host
    /// separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A host role (`gateway`, `isp-edge`, `internet` or `self-check`; discovered hosts
    /// and `[[host]]` tables with a `role` have one): every host of that role,
    /// separately. Not with `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `outage`: seconds every request must have failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_s: Option<f64>,
    /// `loss`: threshold, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_pct: Option<f64>,
    /// `p95`: threshold, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_ms: Option<f64>,
    /// `loss`, `p95`: the window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<f64>,
    /// Seconds the condition must be clear before the alert resolves (default: `for_s`
    /// for an outage, `window_s` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_s: Option<f64>,
    /// Program and arguments run (without a shell) for each event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A firing event less than this many seconds after the rule's last run command is
    /// suppressed (and so is its resolved event). Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_s: Option<f64>,
}

impl AlertConfig {
    /// The `min_interval_s` in effect.
    pub fn min_interval_s(&self) -> f64 {
        self.min_interval_s.unwrap_or(DEFAULT_MIN_INTERVAL_S)
    }

    /// The rule, or an error naming the table and the key.
    pub fn rule(&self, index: usize) -> Result<Rule, String> {
        let at = format!("[[alert]] #{} ({:?})", index + 1, self.name);
        let err = |key: &str, m: &str| Err(format!("{at}: {key}: {m}"));
        // `positive`: 0 excluded.
        let secs = |key: &str, v: Option<f64>, positive: bool| -> Result<Option<u64>, String> {
            match v {
                None => Ok(None),
                Some(s)
                    if s.is_finite() && s <= MAX_ALERT_S && (s > 0.0 || !positive && s == 0.0) =>
                {
                    Ok(Some((s * 1e6).round() as u64))
                }
                Some(s) => Err(format!(
                    "{at}: {key}: {s} is not a number of seconds in {}..={MAX_ALERT_S}",
                    if positive { "0 (excluded)" } else { "0" }
                )),
            }
        };
        if self.name.trim().is_empty() {
            return err("name", "empty");
        }
        let for_us = secs("for_s", self.for_s, true)?;
        let window_us = secs("window_s", self.window_s, true)?;
        let clear_us = secs("clear_s", self.clear_s, false)?;
        secs("min_interval_s", self.min_interval_s, false)?;
        let forbid = |key: &str, set: bool| -> Result<(), String> {
            if set {
                Err(format!(
                    "{at}: {key}: not a key of when = {:?} rules",
                    self.when
                ))
            } else {
                Ok(())
            }
        };
        let when = match self.when.as_str() {
            "outage" => {
                forbid("above_pct", self.above_pct.is_some())?;
                forbid("above_ms", self.above_ms.is_some())?;
                forbid("window_s", self.window_s.is_some())?;
                let Some(for_us) = for_us else {
                    return err("for_s", "required for when = \"outage\"");
                };
                When::Outage { for_us }
            }
            "loss" => {
                forbid("for_s", self.for_s.is_some())?;
                forbid("above_ms", self.above_ms.is_some())?;
                let Some(window_us) = window_us else {
                    return err("window_s", "required for when = \"loss\"");
                };
                match self.above_pct {
                    Some(p) if p.is_finite() && (0.0..100.0).contains(&p) => When::Loss {
                        above_pct: p,
                        window_us,
                    },
                    Some(p) => return err("above_pct", &format!("{p} not in 0..100")),
                    None => return err("above_pct", "required for when = \"loss\""),
                }
            }
            "p95" => {
                forbid("for_s", self.for_s.is_some())?;
                forbid("above_pct", self.above_pct.is_some())?;
                let Some(window_us) = window_us else {
                    return err("window_s", "required for when = \"p95\"");
                };
                match self.above_ms {
                    Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 60_000.0 => When::P95 {
                        above_us: (ms * 1e3).round() as u32,
                        window_us,
                    },
                    Some(ms) => {
                        return err("above_ms", &format!("{ms} not in 0 (excluded)..=60000"));
                    }
                    None => return err("above_ms", "required for when = \"p95\""),
                }
            }
            other => {
                return err(
                    "when",
                    &format!("{other:?} is not one of \"outage\", \"loss\", \"p95\""),
                );
            }
        };
        let host = match (self.host.as_deref(), self.role.as_deref()) {
            (Some(_), Some(_)) => {
                return err(
                    "role",
                    "not with host (a rule watches one label, or every host of one role)",
                );
            }
            (None, Some(r)) if !crate::config::ROLES.contains(&r) => {
                return err(
                    "role",
                    &format!(
                        "{r:?} is not one of {}",
                        crate::config::ROLES.map(|r| format!("{r:?}")).join(", ")
                    ),
                );
            }
            (None, Some(r)) => HostMatch::Role(r.to_owned()),
            (None, None) => HostMatch::Each,
            (Some(ALL_HOSTS), None) => HostMatch::All,
            (Some(l), None) if l.trim().is_empty() => return err("host", "empty"),
            (Some(l), None) => HostMatch::Label(l.to_owned()),
        };
        if let Some(cmd) = &self.command {
            match cmd.first() {
                None => return err("command", "empty (leave it out to only log the alerts)"),
                Some(p) if !Path::new(p).is_absolute() => {
                    return err(
                        "command",
                        &format!("{p:?} is not an absolute path (no shell, no PATH search)"),
                    );
                }
                Some(_) => {}
            }
            if cmd.iter().any(|a| a.contains('\0')) {
                return err("command", "an argument contains a NUL byte");
            }
        }
        let mut rule = Rule::new(self.name.clone(), when, host);
        if let Some(c) = clear_us {
            rule.clear_us = c;
        }
        Ok(rule)
    }
}

/// Every rule of `alerts`, or the first error (naming the table and key); names must be
/// unique.
pub fn rules(alerts: &[AlertConfig]) -> Result<Vec<Rule>, String> {
    let mut names = std::collections::HashSet::new();
    alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if !names.insert(a.name.as_str()) {
                return Err(format!(
                    "[[alert]] #{} ({:?}): name: used by an earlier [[alert]]",
                    i + 1,
                    a.name
                ));
            }
            a.rule(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<AlertConfig> {
        #[derive(Deserialize)]
        struct F {
            alert: Vec<AlertConfig>,
        }
        toml::from_str::<F>(s).unwrap().alert
    }

    #[test]
    fn every_kind_parses_into_its_rule() {
        let a = parse(
            r#"
            [[alert]]
            name = "gw-down"
            when = "outage"
            host = "gw"
            for_s = 5
            command = ["/usr/local/bin/page", "--urgent"]
            min_interval_s = 300
            [[alert]]
            name = "all-down"
            when = "outage"
            host = "all"
            for_s = 2.5
            clear_s = 10
            [[alert]]
            name = "lossy"
            when = "loss"
            above_pct = 5
            window_s = 60
            [[alert]]
            name = "slow"
            when = "p95"
            above_ms = 80
            window_s = 30
            [[alert]]
            name = "gateways"
            when = "outage"
            role = "gateway"
            for_s = 3
            "#,
        );
        let r = rules(&a).unwrap();
        assert_eq!(r[0].when, When::Outage { for_us: 5_000_000 });
        assert_eq!(r[0].host, HostMatch::Label("gw".into()));
        assert_eq!(r[0].clear_us, 5_000_000);
        assert_eq!(a[0].min_interval_s(), 300.0);
        assert_eq!(r[1].host, HostMatch::All);
        assert_eq!(r[1].clear_us, 10_000_000);
        assert_eq!(
            r[2].when,
            When::Loss {
                above_pct: 5.0,
                window_us: 60_000_000
            }
        );
        assert_eq!(r[2].host, HostMatch::Each);
        assert_eq!(a[2].min_interval_s(), DEFAULT_MIN_INTERVAL_S);
        assert_eq!(
            r[3].when,
            When::P95 {
                above_us: 80_000,
                window_us: 30_000_000
            }
        );
        assert_eq!(r[4].host, HostMatch::Role("gateway".into()));
    }

    #[test]
    fn errors_name_the_table_and_the_key() {
        for (body, want) in [
            ("when = \"outage\"", "#1 (\"a\"): for_s: required"),
            (
                "when = \"outage\"\nfor_s = 0",
                "for_s: 0 is not a number of seconds in 0 (excluded)",
            ),
            ("when = \"outage\"\nfor_s = -1", "for_s: -1 is not"),
            (
                "when = \"outage\"\nfor_s = 1\nwindow_s = 3",
                "window_s: not a key of",
            ),
            ("when = \"loss\"\nwindow_s = 3", "above_pct: required"),
            (
                "when = \"loss\"\nabove_pct = 100\nwindow_s = 3",
                "above_pct: 100 not in",
            ),
            ("when = \"loss\"\nabove_pct = 1", "window_s: required"),
            (
                "when = \"p95\"\nabove_ms = 0\nwindow_s = 3",
                "above_ms: 0 not in",
            ),
            (
                "when = \"p95\"\nabove_ms = 10\nwindow_s = 1e9",
                "window_s: 1000000000 is not",
            ),
            ("when = \"jitter\"", "when: \"jitter\" is not one of"),
            ("when = \"outage\"\nfor_s = 1\nhost = \"\"", "host: empty"),
            (
                "when = \"outage\"\nfor_s = 1\nrole = \"router\"",
                "role: \"router\" is not one of \"gateway\", \"isp-edge\"",
            ),
            (
                "when = \"outage\"\nfor_s = 1\nrole = \"gateway\"\nhost = \"gw\"",
                "role: not with host",
            ),
            (
                "when = \"outage\"\nfor_s = 1\ncommand = []",
                "command: empty",
            ),
            (
                "when = \"outage\"\nfor_s = 1\ncommand = [\"notify\"]",
                "command: \"notify\" is not an absolute path",
            ),
            (
                "when = \"outage\"\nfor_s = 1\nmin_interval_s = -2",
                "min_interval_s: -2 is not",
            ),
            (
                "when = \"outage\"\nfor_s = 1\nclear_s = nan",
                "clear_s: NaN is not",
            ),
        ] {
            let a = parse(&format!("[[alert]]\nname = \"a\"\n{body}"));
            let e = rules(&a).unwrap_err();
            assert!(e.starts_with("[[alert]] #1 (\"a\"): "), "{e}");
            assert!(e.contains(want), "{body:?}: {e}");
        }
        let a = parse(
            "[[alert]]\nname = \"a\"\nwhen = \"outage\"\nfor_s = 1\n\
             [[alert]]\nname = \"a\"\nwhen = \"outage\"\nfor_s = 2",
        );
        assert_eq!(
            rules(&a).unwrap_err(),
            "[[alert]] #2 (\"a\"): name: used by an earlier [[alert]]"
        );
        // Unknown keys are refused by the parser, with the key's name.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct F {
            alert: Vec<AlertConfig>,
        }
        let e =
            toml::from_str::<F>("[[alert]]\nname = \"a\"\nwhen = \"outage\"\nfor = 1").unwrap_err();
        assert!(e.to_string().contains("unknown field `for`"), "{e}");
    }
}
