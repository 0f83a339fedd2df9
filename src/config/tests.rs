//! Tests of parsing, defaults, the demo file and routing. Validation rules are tested in
//! `validate.rs`; string value types in `net.rs`.

use super::*;

fn parse(text: &str) -> Config {
    from_str(text, "holdfast.toml").unwrap_or_else(|e| panic!("should parse:\n{e}"))
}

/// The single error line for `text`, which must fail to load.
fn error(text: &str) -> String {
    let errors = from_str(text, "holdfast.toml").expect_err("config should be rejected");
    assert_eq!(errors.0.len(), 1, "{errors}");
    errors.to_string()
}

#[test]
fn empty_file_gives_defaults() {
    let config = parse("");
    assert_eq!(config, Config::default());
    assert_eq!(config.sip.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(config.sip.rtp_ports.to_string(), "20000-29999");
    assert_eq!(config.sip.max_calls, 10_000);
    assert_eq!(config.admin.listen, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(config.store.data_dir, PathBuf::from("./data"));
    assert_eq!(config.priority("vip"), Some(0));
    assert_eq!(config.priority("normal"), Some(5));
    assert_eq!(config.priority("low"), Some(10));
}

#[test]
fn section_defaults() {
    let config = parse(
        r#"
[admin]
listen = ""
[priorities]
gold = 1
[[trunk]]
[[queue]]
name = "support"
bridge = "refer"
[[route]]
number = "1"
queue = "support"
priority = "gold"
[[vip]]
caller = "42"
priority = "gold"
[[agent]]
user = "carol"
ha1 = "0123456789abcdef0123456789abcdef"
"#,
    );
    assert_eq!(config.admin.listen, None, "\"\" disables the admin API");
    assert_eq!(
        config.priorities.len(),
        1,
        "the table replaces the defaults"
    );
    assert_eq!(config.trunks, [Trunk::default()]);
    assert_eq!(config.trunks[0].name, "carrier");
    let q = &config.queues[0];
    assert_eq!(q.bridge, BridgeMode::Refer);
    assert_eq!(
        QueueConfig {
            name: "support".into(),
            bridge: BridgeMode::Refer,
            ..QueueConfig::default()
        },
        *q
    );
    assert_eq!(
        (q.announce_every, q.callback_threshold, q.max_len),
        (30, 300, 1000)
    );
    assert_eq!((q.ring_timeout, q.wrapup, q.max_no_answer), (15, 10, 3));
    assert!(q.callback_number_pattern.is_match("+15550001111"));
    assert_eq!(config.agents[0].queues, ["support"], "absent = every queue");
    assert_eq!(
        config.agents[0].credential(),
        Some(Credential::Ha1("0123456789abcdef0123456789abcdef"))
    );
}

#[test]
fn unknown_key_is_an_error_with_its_place() {
    let text = "[[queue]]\nname = \"support\"\nring_timout = 3\n";
    let message = error(text);
    assert!(
        message.starts_with("holdfast.toml: queue[0].ring_timout: unknown field `ring_timout`"),
        "{message}"
    );
    assert!(message.ends_with("(line 3, column 1)"), "{message}");
    assert!(error("[sipp]\n").contains("unknown field `sipp`"));
}

#[test]
fn toml_syntax_error_names_line_and_column() {
    let message = error("[sip]\nmax_calls = 5\nlisten = \"127.0.0.1:5060\n");
    assert!(message.starts_with("holdfast.toml: "), "{message}");
    assert!(message.contains("(line 3, column"), "{message}");
    let message = error("[sip]\nmax_calls = \"many\"\n");
    assert!(
        message.starts_with("holdfast.toml: sip.max_calls: invalid type"),
        "{message}"
    );
    assert!(message.ends_with("(line 2, column 13)"), "{message}");
}

#[test]
fn bad_values_name_their_key() {
    let message = error("[[trunk]]\nallow = [\"127.0.0.0/8\", \"10.0.0.0/33\"]\n");
    assert_eq!(
        message,
        "holdfast.toml: trunk[0].allow[1]: invalid CIDR \"10.0.0.0/33\": prefix length must \
         be 0 to 32 (line 2, column 9)"
    );
    let message = error("[sip]\nrtp_ports = \"20001-29999\"\n");
    assert!(
        message.starts_with("holdfast.toml: sip.rtp_ports: invalid port range \"20001-29999\""),
        "{message}"
    );
    let message = error("[[queue]]\nname = \"q\"\ncallback_number_pattern = '^[0-9'\n");
    assert!(
        message.starts_with(
            "holdfast.toml: queue[0].callback_number_pattern: invalid regular expression"
        ),
        "{message}"
    );
    let message = error("[sip]\nlisten = \"localhost\"\n");
    assert!(
        message.starts_with("holdfast.toml: sip.listen: "),
        "{message}"
    );
    assert_eq!(
        error("[admin]\nlisten = \"nope\"\n"),
        "holdfast.toml: admin.listen: invalid address \"nope\": expected IP:PORT, or \"\" to \
         disable (line 2, column 10)"
    );
    let message = error("[[queue]]\nname = \"q\"\nbridge = \"bridge\"\n");
    assert!(
        message.starts_with("holdfast.toml: queue[0].bridge: unknown variant"),
        "{message}"
    );
}

#[test]
fn all_validation_errors_are_reported_together() {
    let errors = from_str(
        "[[queue]]\nname = \"a\"\nring_timeout = 0\n[[route]]\nnumber = \"1\"\nqueue = \"b\"\n",
        "site.toml",
    )
    .unwrap_err();
    let lines: Vec<String> = errors.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "site.toml: queue[0].ring_timeout: must be at least 1",
            "site.toml: route[0].queue: unknown queue \"b\"",
        ]
    );
}

/// The demo as docs/behaviour.md describes it, written out independently of the file.
fn expected_demo() -> Config {
    let agent = |user: &str, password: &str, queues: &[&str]| Agent {
        user: user.into(),
        password: Some(password.into()),
        ha1: None,
        queues: queues.iter().map(|&q| q.to_owned()).collect(),
        tiers: BTreeMap::new(),
    };
    let route = |number: &str, queue: &str| Route {
        number: number.into(),
        queue: queue.into(),
        priority: "normal".into(),
        language: None,
    };
    Config {
        trunks: vec![Trunk {
            name: "carrier".into(),
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            address: "127.0.0.1:5070".parse().unwrap(),
            ..Trunk::default()
        }],
        queues: ["premium", "support"]
            .map(|name| QueueConfig {
                name: name.into(),
                ..QueueConfig::default()
            })
            .to_vec(),
        routes: vec![route("200", "premium"), route("*", "support")],
        vips: Vec::new(),
        agents: vec![
            agent("alice", "alice-secret", &["premium", "support"]),
            agent("bob", "bob-secret", &["support"]),
        ],
        sip: Sip {
            listen_tls: Some("127.0.0.1:5061".parse().unwrap()),
            ..Sip::default()
        },
        ..Config::default()
    }
}

#[test]
fn demo_is_the_example_file() {
    let demo = demo();
    assert_eq!(demo, expected_demo());
    assert_eq!(demo.sip.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(demo.admin.listen, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(
        demo.sip.public_address,
        "127.0.0.1".parse::<IpAddr>().unwrap()
    );
}

/// Collects `section.key` names of a TOML table, looking into arrays of tables.
fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        out.push((prefix.to_owned(), key.clone()));
        let tables: Vec<&toml::Table> = match value {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(items) => items.iter().filter_map(|v| v.as_table()).collect(),
            _ => Vec::new(),
        };
        for t in tables {
            keys(t, key, out);
        }
    }
}

#[test]
fn example_file_shows_every_option() {
    // A configuration with every optional section present and both agent secrets set.
    let mut full = expected_demo();
    full.vips.push(Vip::default());
    full.supervisors.push(crate::config::Supervisor::default());
    full.agents[0].ha1 = Some(String::new());
    full.media.shards = Some(2);
    let table: toml::Table = toml::from_str(&toml::to_string(&full).unwrap()).unwrap();
    let mut all = Vec::new();
    keys(&table, "", &mut all);
    assert!(all.len() > 30, "walked too few keys: {all:?}");
    for (section, key) in all {
        let present = if section.is_empty() {
            DEMO.contains(&format!("[{key}]")) || DEMO.contains(&format!("[[{key}]]"))
        } else {
            DEMO.lines().any(|l| {
                l.trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} = "))
            })
        };
        assert!(present, "holdfast.toml does not show {section}.{key}");
    }
    // A map whose keys are queue names: shown by its own line.
    assert!(DEMO.contains("# tiers = { support = 2 }"));
}

#[test]
fn effective_config_round_trips_and_redacts() {
    let demo = demo();
    let plain = toml::to_string(&demo).unwrap();
    assert_eq!(parse(&plain), demo);

    let mut with_secrets = demo.clone();
    with_secrets.trunks[0].username = "u".into();
    with_secrets.trunks[0].password = "trunk-pw".into();
    let shown = with_secrets.to_toml_string();
    for secret in ["alice-secret", "bob-secret", "trunk-pw"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    let back = parse(&shown);
    assert_eq!(back.agents[0].password.as_deref(), Some("<redacted>"));
    assert_eq!(back.queues, demo.queues);
    assert_eq!(back.sip, demo.sip);
}

#[test]
fn routing_exact_then_wildcard_then_vip_override() {
    let mut config = demo();
    config.vips.push(Vip {
        caller: "+15550001111".into(),
        priority: "vip".into(),
    });
    let premium = config.queue_index("premium").unwrap();
    let support = config.queue_index("support").unwrap();
    assert_eq!(config.route("200", "+15559999999"), Some((premium, 5)));
    assert_eq!(config.route("100", "+15559999999"), Some((support, 5)));
    // A VIP keeps the queue chosen by the number but gets the VIP level, whatever is dialled.
    assert_eq!(config.route("200", "+15550001111"), Some((premium, 0)));
    assert_eq!(config.route("555", "+15550001111"), Some((support, 0)));

    config.routes.retain(|r| r.number != "*");
    assert_eq!(
        config.route("100", "+15559999999"),
        None,
        "no wildcard: 404"
    );
    assert_eq!(
        config.route("100", "+15550001111"),
        None,
        "VIP status picks no queue"
    );
    assert_eq!(config.agent_queues(&config.agents[0]), [premium, support]);
}

#[test]
fn load_reads_files_and_names_them() {
    let dir = std::env::temp_dir().join(format!("holdfast-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, DEMO).unwrap();
    assert_eq!(load(&good).unwrap(), demo());

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[sip]\nmax_calls = 0\n").unwrap();
    let message = load(&bad).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("{}: sip.max_calls: must be at least 1", bad.display())
    );

    let missing = dir.join("missing.toml");
    let message = load(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn premium_rate_numbers_are_never_called_back_by_default() {
    let q = QueueConfig::default();
    for allowed in ["+15550001111", "+442071234567", "0049301234567", "5550100"] {
        assert!(q.callback_number_allowed(allowed), "{allowed}");
    }
    for denied in [
        "+19005550100",
        "19765550100",
        "+449012345678",
        "00449012345678",
        "+8816123456789",
        "+979123456789",
        "not a number",
    ] {
        assert!(!q.callback_number_allowed(denied), "{denied}");
    }
    let open = QueueConfig {
        callback_deny_prefixes: Vec::new(),
        ..QueueConfig::default()
    };
    assert!(open.callback_number_allowed("+19005550100"));
}

#[test]
fn deny_prefixes_must_be_digits() {
    let message = error("[[queue]]\nname = \"q\"\ncallback_deny_prefixes = [\"+1900\", \"9x\"]\n");
    assert!(
        message.contains("holdfast.toml: queue[0].callback_deny_prefixes[1]: must be digits"),
        "{message}"
    );
}

#[test]
fn media_shards_default_to_the_cores_less_one_for_signalling() {
    assert_eq!(default_shards(1), 1);
    assert_eq!(default_shards(2), 2);
    assert_eq!(default_shards(3), 2);
    assert_eq!(default_shards(16), 15);
    assert_eq!(parse("[media]\nshards = 3\n").media.shard_count(), 3);
    assert_eq!(
        error("[media]\nshards = 0\n"),
        "holdfast.toml: media.shards: must be between 1 and 1024 (or left out: one per core)"
    );
}

#[test]
fn strategies_and_tiers_are_read_and_checked() {
    let config = parse(
        "[[queue]]\nname = \"support\"\nstrategy = \"round-robin\"\n\
         [[agent]]\nuser = \"a\"\npassword = \"x\"\ntiers = { support = 2 }\n",
    );
    assert_eq!(
        config.queues[0].strategy,
        crate::queue::dispatch::Strategy::RoundRobin
    );
    assert_eq!(config.agents[0].tiers["support"], 2);
    let config = parse("[[queue]]\nname = \"q\"\nstrategy = \"ring-all\"\n");
    assert_eq!(
        config.queues[0].strategy,
        crate::queue::dispatch::Strategy::RingAll
    );
    let message = error("[[queue]]\nname = \"q\"\nstrategy = \"fastest\"\n");
    assert!(
        message.starts_with("holdfast.toml: queue[0].strategy: unknown variant"),
        "{message}"
    );
    assert_eq!(
        error(
            "[[queue]]\nname = \"q\"\n[[agent]]\nuser = \"a\"\npassword = \"x\"\n\
             tiers = { sales = 2 }\n"
        ),
        "holdfast.toml: agent[0].tiers.sales: unknown queue \"sales\""
    );
}

#[test]
fn max_wait_needs_an_overflow_that_exists() {
    let two = "[[queue]]\nname = \"premium\"\nmax_wait = 60\noverflow = \"support\"\n\
               [[queue]]\nname = \"support\"\n";
    assert_eq!(parse(two).queues[0].overflow, "support");
    assert_eq!(
        error("[[queue]]\nname = \"q\"\nmax_wait = 60\n"),
        "holdfast.toml: queue[0].overflow: is required with max_wait: a queue name, \
         \"callback\" or \"hangup\""
    );
    assert_eq!(
        error("[[queue]]\nname = \"q\"\nmax_wait = 60\noverflow = \"sales\"\n"),
        "holdfast.toml: queue[0].overflow: unknown queue \"sales\""
    );
    assert_eq!(
        error("[[queue]]\nname = \"q\"\nmax_wait = 60\noverflow = \"q\"\n"),
        "holdfast.toml: queue[0].overflow: a queue cannot overflow into itself"
    );
}

#[test]
fn when_no_agents_is_join_reject_or_overflow_and_overflow_needs_a_target() {
    let config =
        parse("[[queue]]\nname = \"q\"\nwhen_no_agents = \"reject\"\nno_agents_grace = 5\n");
    assert_eq!(
        (
            config.queues[0].when_no_agents,
            config.queues[0].no_agents_grace
        ),
        (crate::config::WhenNoAgents::Reject, 5)
    );
    assert_eq!(
        parse("[[queue]]\nname = \"q\"\n").queues[0].no_agents_grace,
        30
    );
    assert_eq!(
        error("[[queue]]\nname = \"q\"\nwhen_no_agents = \"overflow\"\n"),
        "holdfast.toml: queue[0].overflow: is required with when_no_agents = \"overflow\": \
         a queue name, \"callback\" or \"hangup\""
    );
    let message = error("[[queue]]\nname = \"q\"\nwhen_no_agents = \"leave\"\n");
    assert!(
        message.starts_with("holdfast.toml: queue[0].when_no_agents: unknown variant"),
        "{message}"
    );
}

#[test]
fn hours_timezone_and_closed_are_checked_with_the_key_named() {
    let config = parse(
        "[[queue]]\nname = \"q\"\nhours = [\"Mon-Fri 08:00-18:00\", \"Sat 09:00-13:00\"]\n\
         timezone = \"America/New_York\"\nclosed = \"callback\"\n",
    );
    assert_eq!(config.queues[0].hours.len(), 2);
    let q = &parse("[[queue]]\nname = \"q\"\n").queues[0];
    assert_eq!((q.timezone.as_str(), q.closed.as_str()), ("UTC", "hangup"));
    assert_eq!(
        error("[[queue]]\nname = \"q\"\nhours = [\"Mon-Fri 8-18\"]\n"),
        "holdfast.toml: queue[0].hours: \"Mon-Fri 8-18\" is not like \"Mon-Fri 08:00-18:00\""
    );
    assert!(
        error("[[queue]]\nname = \"q\"\ntimezone = \"Europe/Atlantis\"\n")
            .starts_with("holdfast.toml: queue[0].timezone: unknown time zone")
    );
    assert_eq!(
        error("[[queue]]\nname = \"q\"\nclosed = \"sales\"\n"),
        "holdfast.toml: queue[0].closed: \"sales\" is not \"hangup\", \"callback\" or a queue's name"
    );
}

#[test]
fn feature_codes_must_be_dialable_distinct_and_not_routes() {
    assert_eq!(parse("").codes.pause, "*46");
    assert_eq!(parse("[codes]\nunpause = \"\"\n").codes.unpause, "");
    let message = error("[codes]\npause = \"*4 6\"\n");
    assert!(
        message.starts_with("holdfast.toml: codes.pause: must be digits"),
        "{message}"
    );
    let message = error("[codes]\npause = \"*47\"\n");
    assert!(
        message.starts_with("holdfast.toml: codes.unpause: \"*47\" is already another code"),
        "{message}"
    );
    let message = error("[[queue]]\nname = \"q\"\n[[route]]\nnumber = \"*46\"\nqueue = \"q\"\n");
    assert!(
        message.starts_with("holdfast.toml: codes.pause: \"*46\" is also route[0].number"),
        "{message}"
    );
}

#[test]
fn recording_and_supervisors_are_checked() {
    let queue = "[[queue]]\nname = \"q\"\n";
    let message = error(&format!("{queue}record = true\nbridge = \"refer\"\n"));
    assert!(
        message.starts_with("holdfast.toml: queue[0].record: needs bridge = \"relay\""),
        "{message}"
    );
    let message = error(&format!(
        "[media]\nrecordings = \"\"\n{queue}record = true\n"
    ));
    assert!(
        message.starts_with("holdfast.toml: media.recordings: must name a directory"),
        "{message}"
    );
    let message = error(&format!(
        "{queue}[[agent]]\nuser = \"sue\"\npassword = \"x\"\n[[supervisor]]\nuser = \"sue\"\npassword = \"y\"\n"
    ));
    assert!(
        message.starts_with("holdfast.toml: agent[0].user: duplicate agent or supervisor user"),
        "{message}"
    );
    let message = error(&format!("{queue}[[supervisor]]\nuser = \"sue\"\n"));
    assert_eq!(
        message,
        "holdfast.toml: supervisor[0].password: is required"
    );
    // `*5` would swallow `*50alice`: a code may not start with a monitoring code.
    let message = error(&format!("[codes]\npause = \"*505\"\n{queue}"));
    assert!(
        message.starts_with("holdfast.toml: codes.pause: \"*505\" starts with codes.listen"),
        "{message}"
    );
    let config = parse(&format!(
        "[codes]\nlisten = \"\"\n{queue}[[supervisor]]\nuser = \"sue\"\npassword = \"y\"\n"
    ));
    assert_eq!(
        config.codes.monitor("*50alice"),
        None,
        "listening turned off"
    );
    assert_eq!(
        config.codes.monitor("*52alice"),
        Some((crate::media::mix::MonitorMode::Barge, "alice"))
    );
    assert_eq!(config.codes.monitor("*52"), None, "no agent named");
    assert!(
        !config.to_toml_string().contains("\"y\""),
        "passwords redacted"
    );
}
