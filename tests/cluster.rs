//! Several holdfast nodes sharing one real PostgreSQL store (docs/cluster.md), end to end.

mod common;

use std::time::Duration;

use common::dialback::{callers_press_one, dialled, trunk, uas, wait_exit};
use common::postgres::Postgres;
use common::{Holdfast, Setup, free_udp_port};

const CALLBACK_QUEUE: &str = "[[queue]]\nname = \"support\"\ncallback_threshold = 1\n\
default_handle_time = 600\nwrapup = 0\ncallback_retry_delay = 2\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

fn node(name: &str, url: &str, rtp_base: u16, trunk_port: u16) -> Setup {
    let mut setup = Setup::new(rtp_base);
    setup.extra = CALLBACK_QUEUE.into();
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.trunk_address = format!("127.0.0.1:{trunk_port}");
    setup.store_extra = format!("backend = \"postgres\"\nurl = \"{url}\"\n");
    setup.cluster_node = Some(name.into());
    setup
}

/// Node a commits three callbacks and is killed (`kill -9`) before any agent frees up. Node
/// b sees a's lease run out, takes the three over and dials each exactly once, in the
/// order the callers pressed 1, to an agent registered at b. When a comes back it has
/// nothing left to dial.
#[test]
fn a_dead_nodes_callbacks_are_dialled_once_each_by_a_survivor_in_order() {
    let pg = Postgres::start();
    let url = pg.database("two_nodes");
    let trunk_port = free_udp_port();
    let numbers = ["+15551240001", "+15551240002", "+15551240003"];
    let mut a = Holdfast::start("cluster-a", &node("a", &url, 43_000, trunk_port));
    let b = Holdfast::start("cluster-b", &node("b", &url, 44_000, trunk_port));
    callers_press_one(
        &a,
        &[
            ("caller_press1.xml", numbers[0]),
            ("caller_press1_info.xml", numbers[1]),
            ("caller_press1.xml", numbers[2]),
        ],
    );
    assert_eq!(
        a.log().matches("callback_committed").count(),
        3,
        "{}",
        a.log()
    );
    a.kill9();

    let trunk_log = b.dir.join("trunk.log");
    let mut trunk = trunk(trunk_port, 3, &trunk_log);
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 3, &[]);
    common::register_sipp_agent(&b, "alice", "alice-secret", agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(75)),
        "trunk scenario failed; node b:\n{}",
        b.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        "agent scenario failed"
    );
    assert_eq!(dialled(&trunk_log), numbers, "each once, in order");
    let log = b.log();
    assert!(
        log.contains("took over the callbacks of a node whose lease ran out"),
        "{log}"
    );
    assert_eq!(log.matches("callback restored").count(), 3, "{log}");

    // a comes back under its name: nothing of it is left to dial.
    let back = Holdfast::start("cluster-a2", &node("a", &url, 43_000, trunk_port));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        back.log().matches("callback restored").count(),
        0,
        "{}",
        back.log()
    );
    assert!(back.log().contains("joined the cluster"), "{}", back.log());
}

/// A store that cannot be reached is a clear start-up error naming it, password hidden.
#[test]
fn an_unreachable_store_is_a_clear_error() {
    let dir = common::scratch_dir("cluster-unreachable");
    let config = dir.join("holdfast.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"postgres\"\nurl = \"postgres://holdfast:s3cret@127.0.0.1:1/holdfast\"\n\
         [cluster]\nnode = \"a\"\n[admin]\nlisten = \"\"\n[sip]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("postgres://holdfast:<redacted>@127.0.0.1:1/holdfast (node a)"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
