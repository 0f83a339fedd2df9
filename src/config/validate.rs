//! Rules a parsed [`Config`] must follow beyond what its types enforce: references between
//! sections resolve, names are unique, counts are positive. Every broken rule is collected
//! so the user fixes the file in one pass (docs/behaviour.md §8: "validates with clear messages (file,
//! key, reason)").

use std::collections::HashMap;

use super::{Config, ConfigError};

/// Collects problems as `FILE: KEY: REASON`.
struct Report<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Report<'_> {
    fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    fn at_least_one(&mut self, key: String, value: u64) {
        if value < 1 {
            self.add(key, "must be at least 1");
        }
    }

    /// Reports `name` at `key` if it is empty or already seen under `section`.
    /// A user name goes into SIP URIs and into the digest string `user:realm:password`.
    fn sip_user(&mut self, key: String, user: &str) {
        if user
            .chars()
            .any(|c| c == ':' || c == '@' || c.is_whitespace() || c.is_control())
        {
            self.add(key, "must not contain ':', '@' or whitespace");
        }
    }

    fn unique<'n>(
        &mut self,
        seen: &mut HashMap<&'n str, String>,
        key: String,
        name: &'n str,
        what: &str,
    ) {
        if name.is_empty() {
            self.add(key, "is required");
        } else if let Some(first) = seen.get(name) {
            let reason = format!("duplicate {what} {name:?} (first at {first})");
            self.add(key, reason);
        } else {
            seen.insert(name, key);
        }
    }
}

/// Every rule `config` breaks, in file order; empty when it is valid.
pub(super) fn validate(config: &Config, file: &str) -> Vec<ConfigError> {
    let mut report = Report {
        file,
        errors: Vec::new(),
    };
    let r = &mut report;

    r.at_least_one("sip.max_calls".into(), config.sip.max_calls.into());
    if config.sip.digest_algorithms.is_empty() {
        r.add("sip.digest_algorithms", "must name at least one algorithm");
    }
    r.at_least_one(
        "sip.max_transactions".into(),
        config.sip.max_transactions.into(),
    );
    r.at_least_one(
        "sip.max_transactions_per_source".into(),
        config.sip.max_transactions_per_source.into(),
    );
    if config.store.backend == crate::config::StoreBackend::Postgres {
        if config.store.url.is_empty() {
            r.add(
                "store.url",
                "required with backend = \"postgres\" (e.g. postgres://holdfast@127.0.0.1:5432/holdfast)",
            );
        } else if let Err(error) = config.store.url.parse::<postgres::Config>() {
            r.add("store.url", format!("not a PostgreSQL URL: {error}"));
        }
    }
    if config.cluster.node.len() > 64
        || !config
            .cluster
            .node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        r.add(
            "cluster.node",
            "at most 64 letters, digits, '-', '_' or '.'",
        );
    }
    if let Some(shards) = config.media.shards
        && !(1..=crate::config::MAX_SHARDS).contains(&shards)
    {
        r.add(
            "media.shards",
            format!(
                "must be between 1 and {} (or left out: one per core)",
                crate::config::MAX_SHARDS
            ),
        );
    }
    r.at_least_one(
        "sip.connection_idle".into(),
        config.sip.connection_idle.into(),
    );
    r.at_least_one(
        "sip.max_connections_per_source".into(),
        config.sip.max_connections_per_source.into(),
    );
    if config.sip.listen_tls.is_some_and(|tls| {
        tls.port() == config.sip.listen.port() && tls.ip() == config.sip.listen.ip()
    }) {
        r.add(
            "sip.listen_tls",
            "must differ from sip.listen (TCP is already served there)",
        );
    }
    if config.sip.min_se < 90 {
        r.add("sip.min_se", "must be at least 90 (RFC 4028 §5)");
    }
    if config.sip.session_expires != 0 && config.sip.session_expires < config.sip.min_se {
        r.add(
            "sip.session_expires",
            "must be 0 (off) or at least sip.min_se",
        );
    }
    if config.priorities.is_empty() {
        r.add("priorities", "must define at least one priority");
    }
    let known_priority = |name: &str| config.priorities.contains_key(name);
    let priority_names = config
        .priorities
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");

    let mut seen = HashMap::new();
    for (i, trunk) in config.trunks.iter().enumerate() {
        r.unique(
            &mut seen,
            format!("trunk[{i}].name"),
            &trunk.name,
            "trunk name",
        );
        if trunk.allow.is_empty() {
            r.add(format!("trunk[{i}].allow"), "must list at least one source");
        }
        if trunk.username.is_empty() && !trunk.password.is_empty() {
            r.add(
                format!("trunk[{i}].username"),
                "is required when password is set",
            );
        }
    }

    let mut seen = HashMap::new();
    for (i, q) in config.queues.iter().enumerate() {
        r.unique(&mut seen, format!("queue[{i}].name"), &q.name, "queue name");
        r.at_least_one(format!("queue[{i}].max_len"), q.max_len.into());
        r.at_least_one(format!("queue[{i}].ring_timeout"), q.ring_timeout);
        r.at_least_one(
            format!("queue[{i}].callback_attempts"),
            q.callback_attempts.into(),
        );
        r.at_least_one(format!("queue[{i}].max_no_answer"), q.max_no_answer.into());
        for (j, prefix) in q.callback_deny_prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                r.add(
                    format!("queue[{i}].callback_deny_prefixes[{j}]"),
                    "must be digits, optionally after a leading +",
                );
            }
        }
        r.at_least_one(
            format!("queue[{i}].default_handle_time"),
            q.default_handle_time,
        );
        if q.announce_position_limit == 1 || q.announce_position_limit > 999 {
            r.add(
                format!("queue[{i}].announce_position_limit"),
                "must be 0 (up to 999) or 2 to 999",
            );
        }
        if !q.periodic_messages.is_empty() && q.periodic_every == 0 {
            r.add(
                format!("queue[{i}].periodic_every"),
                "must be set (seconds between messages) when periodic_messages lists files",
            );
        }
        if q.record && q.bridge == super::BridgeMode::Refer {
            r.add(
                format!("queue[{i}].record"),
                "needs bridge = \"relay\": a call transferred with REFER never passes holdfast",
            );
        }
        if q.record && config.media.recordings.as_os_str().is_empty() {
            r.add(
                "media.recordings".to_owned(),
                format!(
                    "must name a directory: queue {:?} records its calls",
                    q.name
                ),
            );
        }
        if !q.announce_to_agent.as_os_str().is_empty() && !q.announce_to_agent.is_file() {
            r.add(
                format!("queue[{i}].announce_to_agent"),
                format!("no file {}", q.announce_to_agent.display()),
            );
        }
        for (j, path) in q.periodic_messages.iter().enumerate() {
            if !path.is_file() {
                r.add(
                    format!("queue[{i}].periodic_messages[{j}]"),
                    format!("no file {}", path.display()),
                );
            }
        }
    }
    let known_queue = |name: &str| config.queues.iter().any(|q| q.name == name);
    for (i, q) in config.queues.iter().enumerate() {
        if let Err(reason) = crate::queue::hours::Schedule::parse(&q.hours, &q.timezone) {
            let key = if reason.starts_with("unknown time zone") {
                "timezone"
            } else {
                "hours"
            };
            r.add(format!("queue[{i}].{key}"), reason);
        }
        let key = format!("queue[{i}].closed");
        match q.closed.as_str() {
            "hangup" | "callback" => {}
            name if name == q.name => r.add(key, "a closed queue cannot send callers to itself"),
            name if !known_queue(name) => r.add(
                key,
                format!("{name:?} is not \"hangup\", \"callback\" or a queue's name"),
            ),
            _ => {}
        }
        let key = format!("queue[{i}].overflow");
        match q.overflow.as_str() {
            "" if q.max_wait > 0 => r.add(
                key,
                "is required with max_wait: a queue name, \"callback\" or \"hangup\"",
            ),
            "" if q.when_no_agents == crate::config::WhenNoAgents::Overflow => r.add(
                key,
                "is required with when_no_agents = \"overflow\": a queue name, \"callback\" \
                 or \"hangup\"",
            ),
            "" | "callback" | "hangup" => {}
            name if name == q.name => r.add(key, "a queue cannot overflow into itself"),
            name if !known_queue(name) => r.add(key, format!("unknown queue {name:?}")),
            _ => {}
        }
    }

    let codes = config.codes.all();
    for (i, (key, code)) in codes.iter().enumerate() {
        if let Some(reason) = crate::config::Codes::problem(code) {
            r.add(format!("codes.{key}"), reason);
        }
        if !code.is_empty() && codes[..i].iter().any(|(_, other)| other == code) {
            r.add(
                format!("codes.{key}"),
                format!("{code:?} is already another code"),
            );
        }
        if let Some((prefix_key, prefix, _)) = config
            .codes
            .prefixes()
            .into_iter()
            .find(|(k, p, _)| !p.is_empty() && k != key && code.starts_with(*p))
        {
            r.add(
                format!("codes.{key}"),
                format!("{code:?} starts with codes.{prefix_key} ({prefix:?}), which is dialled with an agent after it"),
            );
        }
        if let Some(j) = config.routes.iter().position(|route| route.number == *code) {
            r.add(
                format!("codes.{key}"),
                format!("{code:?} is also route[{j}].number: one of them would never be reached"),
            );
        }
    }

    let mut seen = HashMap::new();
    for (i, route) in config.routes.iter().enumerate() {
        r.unique(
            &mut seen,
            format!("route[{i}].number"),
            &route.number,
            "route number",
        );
        if route.queue.is_empty() {
            r.add(format!("route[{i}].queue"), "is required");
        } else if !known_queue(&route.queue) {
            r.add(
                format!("route[{i}].queue"),
                format!("unknown queue {:?}", route.queue),
            );
        }
        if !known_priority(&route.priority) {
            let reason = format!(
                "unknown priority {:?} (known: {priority_names})",
                route.priority
            );
            r.add(format!("route[{i}].priority"), reason);
        }
    }

    let mut seen = HashMap::new();
    for (i, vip) in config.vips.iter().enumerate() {
        r.unique(
            &mut seen,
            format!("vip[{i}].caller"),
            &vip.caller,
            "vip caller",
        );
        if !known_priority(&vip.priority) {
            let reason = format!(
                "unknown priority {:?} (known: {priority_names})",
                vip.priority
            );
            r.add(format!("vip[{i}].priority"), reason);
        }
    }

    let mut seen = HashMap::new();
    for (i, supervisor) in config.supervisors.iter().enumerate() {
        let user = &supervisor.user;
        r.unique(
            &mut seen,
            format!("supervisor[{i}].user"),
            user,
            "agent or supervisor user",
        );
        r.sip_user(format!("supervisor[{i}].user"), user);
        if supervisor.password.is_empty() {
            r.add(format!("supervisor[{i}].password"), "is required");
        }
    }
    for (i, agent) in config.agents.iter().enumerate() {
        let user = &agent.user;
        r.unique(
            &mut seen,
            format!("agent[{i}].user"),
            user,
            "agent or supervisor user",
        );
        r.sip_user(format!("agent[{i}].user"), user);
        match (&agent.password, &agent.ha1) {
            (Some(_), Some(_)) => r.add(
                format!("agent[{i}].ha1"),
                "set either password or ha1, not both",
            ),
            (None, None) => r.add(format!("agent[{i}].password"), "is required (or ha1)"),
            (Some(password), None) if password.is_empty() => {
                r.add(format!("agent[{i}].password"), "must not be empty");
            }
            (None, Some(ha1))
                if !matches!(ha1.len(), 32 | 64) || !ha1.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                r.add(
                    format!("agent[{i}].ha1"),
                    "must be 32 (MD5) or 64 (SHA-256) hex digits",
                );
            }
            _ => {}
        }
        let mut listed = HashMap::new();
        for (j, name) in agent.queues.iter().enumerate() {
            let key = format!("agent[{i}].queues[{j}]");
            if !known_queue(name) {
                r.add(key, format!("unknown queue {name:?}"));
            } else {
                r.unique(&mut listed, key, name, "queue");
            }
        }
        for (name, &tier) in &agent.tiers {
            let key = format!("agent[{i}].tiers.{name}");
            if !known_queue(name) {
                r.add(key, format!("unknown queue {name:?}"));
            } else if !agent.queues.is_empty() && !agent.queues.contains(name) {
                r.add(key, format!("the agent does not serve queue {name:?}"));
            } else if tier == 0 {
                r.add(key, "tiers start at 1");
            }
        }
    }
    report.errors
}

#[cfg(test)]
mod tests {
    use crate::config::from_str;

    /// The error lines for `text`, which must fail to load.
    fn errors(text: &str) -> Vec<String> {
        from_str(text, "holdfast.toml")
            .expect_err("config should be rejected")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const BASE: &str = r#"
[[queue]]
name = "support"
[[queue]]
name = "sales"
"#;

    #[test]
    fn counts_must_be_positive() {
        let text = r#"
[sip]
max_calls = 0
[[queue]]
name = "a"
[[queue]]
name = "b"
ring_timeout = 0
max_len = 0
callback_attempts = 0
max_no_answer = 0
default_handle_time = 0
"#;
        assert_eq!(
            errors(text),
            [
                "holdfast.toml: sip.max_calls: must be at least 1",
                "holdfast.toml: queue[1].max_len: must be at least 1",
                "holdfast.toml: queue[1].ring_timeout: must be at least 1",
                "holdfast.toml: queue[1].callback_attempts: must be at least 1",
                "holdfast.toml: queue[1].max_no_answer: must be at least 1",
                "holdfast.toml: queue[1].default_handle_time: must be at least 1",
            ]
        );
    }

    #[test]
    fn names_are_required_and_unique() {
        let text = r#"
[[trunk]]
[[trunk]]
[[queue]]
name = "support"
[[queue]]
[[queue]]
name = "support"
[[agent]]
user = "alice"
password = "x"
[[agent]]
user = "alice"
password = "y"
[[agent]]
password = "z"
"#;
        assert_eq!(
            errors(text),
            [
                r#"holdfast.toml: trunk[1].name: duplicate trunk name "carrier" (first at trunk[0].name)"#,
                "holdfast.toml: queue[1].name: is required",
                r#"holdfast.toml: queue[2].name: duplicate queue name "support" (first at queue[0].name)"#,
                r#"holdfast.toml: agent[1].user: duplicate agent or supervisor user "alice" (first at agent[0].user)"#,
                "holdfast.toml: agent[2].user: is required",
            ]
        );
    }

    #[test]
    fn references_must_resolve() {
        let text = format!(
            r#"{BASE}
[[route]]
number = "100"
queue = "marketing"
priority = "gold"
[[route]]
number = "100"
queue = "sales"
[[route]]
priority = "vip"
[[vip]]
caller = "+15550001111"
priority = "platinum"
[[agent]]
user = "bob"
password = "pw"
queues = ["sales", "nowhere", "sales"]
"#
        );
        assert_eq!(
            errors(&text),
            [
                r#"holdfast.toml: route[0].queue: unknown queue "marketing""#,
                r#"holdfast.toml: route[0].priority: unknown priority "gold" (known: low, normal, vip)"#,
                r#"holdfast.toml: route[1].number: duplicate route number "100" (first at route[0].number)"#,
                "holdfast.toml: route[2].number: is required",
                "holdfast.toml: route[2].queue: is required",
                r#"holdfast.toml: vip[0].priority: unknown priority "platinum" (known: low, normal, vip)"#,
                r#"holdfast.toml: agent[0].queues[1]: unknown queue "nowhere""#,
                r#"holdfast.toml: agent[0].queues[2]: duplicate queue "sales" (first at agent[0].queues[0])"#,
            ]
        );
    }

    #[test]
    fn agent_credentials() {
        let text = format!(
            r#"{BASE}
[[agent]]
user = "both"
password = "pw"
ha1 = "0123456789abcdef0123456789abcdef"
[[agent]]
user = "neither"
[[agent]]
user = "short"
ha1 = "abc"
[[agent]]
user = "empty"
password = ""
[[agent]]
user = "a:b"
password = "pw"
[[agent]]
user = "fine"
ha1 = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
"#
        );
        assert_eq!(
            errors(&text),
            [
                "holdfast.toml: agent[0].ha1: set either password or ha1, not both",
                "holdfast.toml: agent[1].password: is required (or ha1)",
                "holdfast.toml: agent[2].ha1: must be 32 (MD5) or 64 (SHA-256) hex digits",
                "holdfast.toml: agent[3].password: must not be empty",
                "holdfast.toml: agent[4].user: must not contain ':', '@' or whitespace",
            ]
        );
    }

    #[test]
    fn priorities_and_trunks() {
        let text = r#"
[priorities]
[[trunk]]
allow = []
password = "secret"
"#;
        assert_eq!(
            errors(text),
            [
                "holdfast.toml: priorities: must define at least one priority",
                "holdfast.toml: trunk[0].allow: must list at least one source",
                "holdfast.toml: trunk[0].username: is required when password is set",
            ]
        );
    }
}
