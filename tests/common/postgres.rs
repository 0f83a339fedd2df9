//! A real PostgreSQL server (Debian package `postgresql`, 15 on Debian 12) for the tests of
//! the PostgreSQL store: a fresh database per test on a loopback server.
//!
//! The server is either the one named by `HOLDFAST_TEST_PG` (a base URL,
//! `postgres://holdfast@127.0.0.1:PORT`, whose role `holdfast` may create databases; it is
//! left running), or a throwaway cluster of this test process: `scripts/postgres.sh start`
//! in a scratch directory, on a free TCP port in 55000..56000, with fsync and
//! synchronous_commit on, trust authentication, 200 connections. Starting it costs 1.5-3.5 s
//! (initdb, mostly); it is stopped (fast shutdown) and its directory removed on drop, in
//! 0.5-2 s (the shutdown checkpoint). A test process killed with SIGKILL leaves its cluster
//! running (the postmaster is a daemon in its own session); to clean up:
//! `for d in /tmp/holdfast-postgres-*; do scripts/postgres.sh stop $d; done`.
//!
//! Without PostgreSQL installed, [`Postgres::start`] fails the test, saying so:
//! `scripts/test.sh` installs it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The script that creates, starts, stops and removes a throwaway cluster.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");

/// The environment variable naming a server to use instead of a throwaway one.
pub const ENV: &str = "HOLDFAST_TEST_PG";

/// `scripts/postgres.sh`'s exit status when no PostgreSQL server is installed.
const NOT_INSTALLED: i32 = 3;

/// A PostgreSQL server to create test databases on; a throwaway one is stopped on drop.
pub struct Postgres {
    /// `postgres://holdfast@127.0.0.1:PORT`, no trailing slash.
    base: String,
    /// The cluster's directory (data in `data/`, server log in `log`) when this process
    /// started it; `None` for the server of `HOLDFAST_TEST_PG`.
    pub dir: Option<PathBuf>,
}

impl Postgres {
    /// The server of `HOLDFAST_TEST_PG`, or a throwaway one started now.
    pub fn start() -> Postgres {
        let given = std::env::var(ENV).unwrap_or_default();
        let given = given.trim().trim_end_matches('/');
        if !given.is_empty() {
            let base = given.to_string();
            return Postgres { base, dir: None };
        }
        let dir = super::scratch_dir("postgres");
        let mut tries = 0;
        loop {
            tries += 1;
            let port = free_tcp_port();
            let output = Command::new(SCRIPT)
                .arg("start")
                .arg(&dir)
                .arg(port.to_string())
                .output()
                .expect("run scripts/postgres.sh");
            if output.status.success() {
                let base = format!("postgres://holdfast@127.0.0.1:{port}");
                return Postgres {
                    base,
                    dir: Some(dir),
                };
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.code() == Some(NOT_INSTALLED) {
                let _ = std::fs::remove_dir_all(&dir);
                panic!(
                    "{} (scripts/test.sh installs the postgresql package)",
                    stderr.trim()
                );
            }
            // Remove the half-made cluster either way; `start` recreates the directory.
            let _ = Command::new(SCRIPT).arg("stop").arg(&dir).output();
            // Another process took the port between `free_tcp_port` and the server's bind.
            if tries < 4 && stderr.contains("Address already in use") {
                continue;
            }
            panic!(
                "scripts/postgres.sh start {} {port} failed ({}):\n{stderr}",
                dir.display(),
                output.status
            );
        }
    }

    /// The server's URL without a database: `postgres://holdfast@127.0.0.1:PORT`.
    pub fn url_base(&self) -> &str {
        &self.base
    }

    /// A fresh, empty database `name` owned by `holdfast` (dropped first if it exists, its
    /// connections closed); its URL. On a shared `HOLDFAST_TEST_PG` server, test processes
    /// running at the same time need different names: name it after the test.
    pub fn database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() < 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?}: lowercase letters, digits and _ only"
        );
        let output = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!("{}/postgres", self.base))
            // Two commands: DROP DATABASE and CREATE DATABASE cannot share a transaction.
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\" OWNER holdfast"))
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run psql (apt-get install postgresql-client)");
        assert!(
            output.status.success(),
            "psql could not create database {name} on {} ({}):\n{}",
            self.base,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        format!("{}/{name}", self.base)
    }

    /// Everything the throwaway server logged so far (empty for `HOLDFAST_TEST_PG`'s).
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join("log")).ok())
            .unwrap_or_default()
    }

    /// Stops the throwaway server, keeping its data (a database outage);
    /// [`Postgres::restart`] brings it back on the same port.
    pub fn halt(&self) {
        self.script("halt", None);
    }

    /// Starts the server [`Postgres::halt`] stopped, with its data, on its port.
    pub fn restart(&self) {
        let port = self
            .base
            .rsplit(':')
            .next()
            .expect("a port in the URL")
            .to_owned();
        self.script("start", Some(&port));
    }

    fn script(&self, command: &str, port: Option<&str>) {
        let dir = self
            .dir
            .as_ref()
            .expect("only a throwaway server can be halted");
        let output = Command::new(SCRIPT)
            .arg(command)
            .arg(dir)
            .args(port)
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            output.status.success(),
            "scripts/postgres.sh {command} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stop the throwaway server and remove its directory now (what drop does).
    pub fn stop(self) {}
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return; // HOLDFAST_TEST_PG's server: not ours to stop
        };
        match Command::new(SCRIPT).arg("stop").arg(&dir).output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "scripts/postgres.sh stop {} failed ({}):\n{}",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => eprintln!("run scripts/postgres.sh stop {}: {e}", dir.display()),
        }
    }
}

/// A TCP port in 55000..56000 that was free on 127.0.0.1 a moment ago; each call starts
/// its search elsewhere, so test processes starting servers at once rarely pick the same.
fn free_tcp_port() -> u16 {
    static N: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id()
        .wrapping_mul(7)
        .wrapping_add(N.fetch_add(1, Ordering::Relaxed).wrapping_mul(101));
    (0..1000)
        .map(|i| 55_000 + (start.wrapping_add(i) % 1000) as u16)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free TCP port in 55000..56000")
}
