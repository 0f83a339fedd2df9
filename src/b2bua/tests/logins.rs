//! Failed logins (docs/behaviour.md §9): the guesser is held to ten tries a minute per user
//! name from one address, and only that pair is blocked; replayed credentials never move a
//! binding.

use super::agents::{AGENT, CONFIG_AGENTS, param, register_for, register_user};
use super::*;
use crate::queue::dispatch::AgentState;

fn config(extra_sip: &str) -> String {
    CONFIG_AGENTS.replace(
        "digest_algorithms = [\"MD5\"]\n",
        &format!("digest_algorithms = [\"MD5\"]\n{extra_sip}"),
    ) + "[[agent]]\nuser = \"bob\"\npassword = \"bob-secret\"\n"
}

fn state(h: &Harness, user: &str) -> AgentState {
    let agents = h.b2bua.agents();
    agents.get(agents.find(user).unwrap()).unwrap().state()
}

/// Ten wrong answers for `user` from [`AGENT`], each a `403`.
fn guess_ten_times(h: &mut Harness, user: &str) {
    h.deliver(AGENT, &register_for(user, 1, None, 3600));
    let challenge = h.take()[0].1.clone();
    let nonce = param(&challenge, "nonce").to_string();
    let wrong = format!(
        "Digest username=\"{user}\", realm=\"holdfast\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1:5060\", \
         response=\"00000000000000000000000000000000\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c\""
    );
    for cseq in 2..12 {
        h.deliver(AGENT, &register_for(user, cseq, Some(wrong.clone()), 3600));
        assert_eq!(status(&h.take()[0].1), Some(403));
    }
}

#[test]
fn guesses_at_one_user_block_that_user_from_that_address_only() {
    let mut h = Harness::with_config(&config(""));
    guess_ten_times(&mut h, "alice");
    // The right password for alice from there is refused for the window, without a challenge …
    let refused = register_user(&mut h, "alice", "alice-secret");
    assert_eq!(status(&refused), Some(403), "{refused}");
    assert_eq!(state(&h, "alice"), AgentState::Offline);
    // … but bob, behind the same address, registers as usual.
    let bob = register_user(&mut h, "bob", "bob-secret");
    assert_eq!(status(&bob), Some(200), "{bob}");
    assert_eq!(state(&h, "bob"), AgentState::Available);
    let snapshot = h.b2bua.snapshot(h.now);
    assert_eq!(snapshot.blocks.len(), 1);
    let block = &snapshot.blocks[0];
    assert_eq!(
        (block.source.as_str(), block.user.as_deref(), block.failures),
        ("127.0.0.1", Some("alice"), 10)
    );
    assert_eq!(block.remaining_s, 60);
    assert_eq!(snapshot.counters.auth_failures, 10);
    assert_eq!(snapshot.counters.register_blocked, 1);
    // After the window alice may try again.
    h.run_until(h.now + Duration::from_secs(61));
    assert_eq!(
        status(&register_user(&mut h, "alice", "alice-secret")),
        Some(200)
    );
    assert!(h.b2bua.snapshot(h.now).blocks.is_empty());
}

#[test]
fn made_up_user_names_share_one_budget_per_address() {
    let mut h = Harness::with_config(&config(""));
    for i in 0..10 {
        let user = format!("guess{i}");
        let reply = register_user(&mut h, &user, "x");
        assert_eq!(status(&reply), Some(403), "{reply}");
    }
    let snapshot = h.b2bua.snapshot(h.now);
    assert_eq!(snapshot.blocks.len(), 1);
    assert_eq!(snapshot.blocks[0].user, None, "unknown users, as one key");
    // The eleventh made-up name is refused before any challenge; real agents are not.
    h.deliver(AGENT, &register_for("guess99", 1, None, 3600));
    assert_eq!(status(&h.take()[0].1), Some(403));
    assert_eq!(
        status(&register_user(&mut h, "alice", "alice-secret")),
        Some(200)
    );
}

#[test]
fn networks_in_auth_never_block_are_never_blocked() {
    let mut h = Harness::with_config(&config("auth_never_block = [\"127.0.0.0/8\"]\n"));
    guess_ten_times(&mut h, "alice");
    assert_eq!(
        status(&register_user(&mut h, "alice", "alice-secret")),
        Some(200)
    );
    assert_eq!(
        h.b2bua.snapshot(h.now).counters.auth_failures,
        10,
        "still counted"
    );
}

#[test]
fn a_replayed_register_from_another_port_does_not_move_the_binding() {
    let mut h = Harness::with_config(&config(""));
    h.deliver(AGENT, &register_for("alice", 1, None, 3600));
    let challenge = h.take()[0].1.clone();
    let (realm, nonce) = (param(&challenge, "realm"), param(&challenge, "nonce"));
    let ha1 = super::agents::md5_hex(&format!("alice:{realm}:alice-secret"));
    let ha2 = super::agents::md5_hex("REGISTER:sip:127.0.0.1:5060");
    let response = super::agents::md5_hex(&format!("{ha1}:{nonce}:00000001:c1:auth:{ha2}"));
    let auth = format!(
        "Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1:5060\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c1\""
    );
    let genuine = register_for("alice", 2, Some(auth), 3600);
    h.deliver(AGENT, &genuine);
    assert_eq!(status(&h.take()[0].1), Some(200));
    // The attacker sends the captured request, with its own Contact, from its own port …
    let attacker = "127.0.0.1:6666";
    // (a new branch: the same one would only be a retransmission of the genuine request)
    let forged = genuine
        .replace(
            "Contact: <sip:alice@127.0.0.1:5090>",
            "Contact: <sip:alice@127.0.0.1:6666>",
        )
        .replace("z9hG4bK-reg2-", "z9hG4bK-forged-");
    h.deliver(attacker, &forged);
    let reply = h.take()[0].1.clone();
    assert_eq!(status(&reply), Some(401), "{reply}");
    // … and from the agent's own address (spoofed): the count was used.
    h.deliver(AGENT, &forged.replace("z9hG4bK-forged-", "z9hG4bK-again-"));
    assert_eq!(status(&h.take()[0].1), Some(401));
    let binding = h.b2bua.registration.registrar.binding("alice").unwrap();
    assert_eq!(binding.contact, format!("sip:alice@{AGENT}"));
    assert_eq!(
        h.b2bua.snapshot(h.now).counters.auth_failures,
        0,
        "replays are not guesses"
    );
}
