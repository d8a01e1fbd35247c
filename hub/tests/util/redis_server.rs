//! A real `redis-server` for one test: on a free loopback port, without
//! persistence, stopped by its PID in `Drop`; it can be frozen (SIGSTOP),
//! thawed (SIGCONT), and restarted empty on the same port.
#![allow(dead_code)] // each test crate uses part of the fixture

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "redis-server";

/// A running redis-server; killed in `Drop`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// A new server on a free port, or `None` (the test says it skipped)
    /// when redis-server is not installed; under CI that is a failure.
    pub fn start(test: &str) -> Option<Self> {
        let have = Command::new(REDIS_SERVER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the Redis tests: install Debian's redis-server"
            );
            eprintln!(
                "SKIPPED {test}: redis-server is not installed (apt-get install redis-server)"
            );
            return None;
        }
        // A free port: bind, read it, release it for redis-server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        Some(server)
    }

    /// Starts (again) on the same port, empty: no persistence.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_for_pong();
    }

    /// Sends one command (inline form) and answers Redis's first reply line.
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut con = std::net::TcpStream::connect(addr).expect("connect to redis");
        con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        con.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut reply = String::new();
        std::io::BufReader::new(con).read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }

    /// The URL hubs connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// SIGSTOP: Redis accepts connections but answers nothing.
    pub fn freeze(&self) {
        signal("-STOP", &self.pid());
    }

    /// SIGCONT: Redis runs again and works through what waited.
    pub fn thaw(&self) {
        signal("-CONT", &self.pid());
    }

    /// Stops it (by its PID) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen server must be thawed to exit on SIGKILL promptly.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Reads `+PONG` with a deadline, retrying the connection until the
    /// server listens.
    fn wait_for_pong(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut answer = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20)); // the server is starting: poll again
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill")
        .args([which, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
