//! The `sseloop` hub binary as a test fixture. Only the binary's own
//! integration tests include this file (it names the binary with `env!`).
#![allow(dead_code)] // each test crate uses part of the fixture

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Instant;

use crate::util::{Client, EventStream, Head, DEADLINE};

/// The `sseloop` hub binary running as a child process on 127.0.0.1 and a
/// free port; killed in `Drop` unless it was stopped with a signal first.
pub struct HubProcess {
    pub addr: SocketAddr,
    pub child: std::process::Child,
    /// Receives the hub's later stderr lines; disconnects when it exits.
    stderr: mpsc::Receiver<String>,
    /// How clients speak HTTPS to a hub started with `--tls-cert`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl HubProcess {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// The hub speaking Mercure 0.x beside 1.0 (`--mercure-compat 0.x`):
    /// the suites written for 0.x run against it.
    pub fn start_0x(args: &[&str]) -> Self {
        Self::start_0x_with_env(args, &[])
    }

    /// As [`start_0x`](Self::start_0x), with environment variables.
    pub fn start_0x_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["--mercure-compat", "0.x"];
        all.extend_from_slice(args);
        Self::start_with_env(&all, env)
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sseloop"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("SSELOOP_PUBLISH_TOKEN")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the hub");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Every line goes to the test; the pipe closes when the hub exits.
            for line in io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Owned from here: a panic below still kills the child in `Drop`.
        let mut hub = HubProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            stderr: rx,
            tls: None,
        };
        // Log lines (Redis coming up, say) may come first.
        let deadline = Instant::now() + DEADLINE;
        hub.addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = hub
                .stderr
                .recv_timeout(left)
                .expect("the hub did not say where it listens");
            let at = line.strip_prefix("sseloop: listening on http://");
            if let Some(at) = at.or_else(|| line.strip_prefix("sseloop: listening on https://")) {
                break at.trim().parse().expect("an address");
            }
            // With --log-format json, the same line is a JSON object.
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(at) = json["addr"].as_str() {
                    break at.parse().expect("an address");
                }
            }
        };
        hub
    }

    /// The hub's next stderr line, waiting at most `within`.
    pub fn stderr_line(&self, within: std::time::Duration) -> Option<String> {
        self.stderr.recv_timeout(within).ok()
    }

    /// Every client of this hub from now on speaks HTTPS with `config`.
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The hub's next stderr lines until one contains `needle` (a read
    /// with a deadline), answering that one.
    pub fn stderr_line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr_line(left)
                .unwrap_or_else(|| panic!("no stderr line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub fn connect(&self) -> Client {
        match &self.tls {
            Some(config) => Client::connect_tls(self.addr, config.clone(), "localhost"),
            None => Client::connect(self.addr),
        }
    }

    /// Sends a request and reads the plain response.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Head, Vec<u8>) {
        let mut client = self.connect();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        client.send(head.as_bytes());
        client.send(body);
        client.read_response()
    }

    pub fn publish(&self, query: &str, body: &str) -> (u16, String) {
        let (head, body) = self.request("POST", &format!("/publish{query}"), &[], body.as_bytes());
        (head.status, String::from_utf8(body).unwrap())
    }

    /// Opens `GET target` as an event stream and reads the `seid` event.
    pub fn subscribe(&self, target: &str) -> (EventStream, String) {
        let mut client = self.connect();
        client.get(target);
        let mut stream = EventStream::from_client(client);
        let first = stream.next();
        assert_eq!(first.event, "seid", "the first event names the seid");
        (stream, first.data)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + DEADLINE;
        // Read stderr until it closes: the hub has exited.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the hub did not exit after SIGTERM")
                }
            }
        }
        self.child.wait().expect("wait")
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
