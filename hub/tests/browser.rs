//! The demo page in a real browser: headless Chromium, driven over the
//! WebDriver protocol by Debian's chromedriver, opens the hub's page; the
//! test publishes over HTTP and reads the event off the page, then publishes
//! from the page's own form and receives it on a test stream. And the
//! Mercure interface from a page: an `EventSource` receives public updates
//! the page posts as forms, and never a private one; and, in Mercure 1.0,
//! an `EventSource` authorized by the access token cookie (set through
//! WebDriver, `--cookie-name` over plain HTTP) receives the private update
//! its grant allows and no other; and the same over HTTPS (`--tls-cert`,
//! a certificate made in the test) with the default
//! `__Secure-mercure_access_token` cookie.
//!
//! Without chromedriver the test says it was skipped and why; under CI
//! (`CI=true`) a missing browser is a failure, never a skip.

#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "util/jwt.rs"]
mod jwt;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use hub_process::HubProcess;
use serde_json::{json, Value};
use util::{Client, DEADLINE};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one WebDriver command may take.
const BROWSER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// One browser at a time: two Chromiums starting at once on this 2-core
/// machine slow each other past any sensible deadline.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running chromedriver; killed in `Drop`.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    fn start() -> Self {
        // A free port: bind, read it, release it for chromedriver.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx
                .recv_timeout(DEADLINE)
                .expect("chromedriver did not start");
            if line.contains("started successfully") {
                break;
            }
        }
        Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// One WebDriver command; answers its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        // A browser starting up (or navigating on a busy machine) takes
        // longer than the servers under test ever may.
        let mut client = Client::connect(self.addr).with_patience(BROWSER_PATIENCE);
        client.send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let (head, body) = client.read_response();
        let value: Value = serde_json::from_slice(&body).expect("JSON from chromedriver");
        assert_eq!(head.status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session on the driver; ended in `Drop`.
struct Session<'a> {
    driver: &'a Driver,
    id: String,
    _profile: TempDir,
}

impl<'a> Session<'a> {
    /// A browser session with Chromium's `extra` flags besides the usual.
    fn new(driver: &'a Driver, extra: &[&str]) -> Self {
        let profile = TempDir::new();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // The flags this machine needs: no sandbox as root, and no
                // background traffic to the closed network.
                "args": args
            }
        }}});
        let value = driver.call("POST", "/session", Some(caps));
        let id = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        let session = Session {
            driver,
            id,
            _profile: profile,
        };
        session.call(
            "POST",
            "timeouts",
            json!({ "script": DEADLINE.as_millis() as u64 }),
        );
        session
    }

    fn call(&self, method: &str, command: &str, body: Value) -> Value {
        self.driver.call(
            method,
            &format!("/session/{}/{command}", self.id),
            Some(body),
        )
    }

    /// Runs `script` in the page until it calls its callback; the driver's
    /// script timeout is the deadline.
    fn wait_for(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "execute/async",
            json!({ "script": script, "args": args }),
        )
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.driver
                .call("DELETE", &format!("/session/{}", self.id), None)
        }));
    }
}

/// A directory removed in `Drop`.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "sseloop-browser-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Resolves once `#id`'s text satisfies the check (polled in the page).
const WAIT_TEXT: &str = r#"
const [id, needle, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const check = () => {
  const text = document.getElementById(id).textContent;
  if (needle === null ? text !== "–" : text.includes(needle)) done(text); else setTimeout(check, 10);
};
check();
"#;

/// Whether the browser is here; under CI its absence is a failure.
fn have_browser(test: &str) -> bool {
    let have =
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the browser test: install Debian's chromium and chromium-driver"
        );
        eprintln!("SKIPPED {test}: {CHROMEDRIVER} or {CHROMIUM} is not installed (apt-get install chromium chromium-driver)");
    }
    have
}

/// In the page: an `EventSource` on the Mercure hub for `arguments[0]`
/// (topic), every message's data kept in `window.got`; resolves once open.
const MERCURE_LISTEN: &str = r#"
const [topic, done] = [arguments[0], arguments[arguments.length - 1]];
window.got = [];
const source = new EventSource('/.well-known/mercure?topic=' + encodeURIComponent(topic));
source.onmessage = (e) => window.got.push(e.data);
source.onopen = () => done('open');
source.onerror = () => done('error');
"#;

/// In the page: posts the form `arguments[1]` (an object) to the hub with
/// the bearer token `arguments[0]`, as `application/x-www-form-urlencoded`
/// (`URLSearchParams`); resolves with the status and body.
const MERCURE_POST: &str = r#"
const [token, fields, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const body = new URLSearchParams();
for (const [k, v] of Object.entries(fields)) body.append(k, v);
fetch('/.well-known/mercure', { method: 'POST', body, headers: { Authorization: 'Bearer ' + token } })
  .then(async (r) => done(r.status + ' ' + await r.text()), (e) => done('failed ' + e));
"#;

/// Resolves with `window.got` once it has `arguments[0]` messages.
const MERCURE_GOT: &str = r#"
const [count, done] = [arguments[0], arguments[arguments.length - 1]];
const check = () => window.got.length >= count ? done(window.got) : setTimeout(check, 10);
check();
"#;

#[test]
fn a_browser_eventsource_gets_public_mercure_updates_and_never_private_ones() {
    if !have_browser("a_browser_eventsource_gets_public_mercure_updates_and_never_private_ones") {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let secret = "!ChangeThisMercureHubJWTSecretKey!";
    let hub = HubProcess::start_0x(&["--jwt-key", secret, "--anonymous"]);
    // Signed by the tests' own JWT code, as in every other test.
    let token = hs256_publish_all(secret);
    let driver = Driver::start();
    let session = Session::new(&driver, &[]);
    session.call(
        "POST",
        "url",
        json!({ "url": format!("http://{}/", hub.addr) }),
    );
    let topic = "https://example.com/books/1";
    assert_eq!(
        session.wait_for(MERCURE_LISTEN, json!([topic])),
        json!("open")
    );
    for fields in [
        json!({ "topic": topic, "data": "public update" }),
        json!({ "topic": topic, "data": "private update", "private": "on" }),
        json!({ "topic": topic, "data": "second public" }),
    ] {
        let answer = session.wait_for(MERCURE_POST, json!([token, fields]));
        assert!(
            answer.as_str().unwrap().starts_with("200 urn:uuid:"),
            "{answer}"
        );
    }
    let got = session.wait_for(MERCURE_GOT, json!([2]));
    assert_eq!(
        got,
        json!(["public update", "second public"]),
        "the private update never arrives"
    );
}

/// In the page: an `EventSource` (with credentials) on the Mercure 1.0 hub
/// for the URL Pattern `arguments[0]`, every message's data kept in
/// `window.got`; resolves once open, or with the error.
const MERCURE_1_LISTEN: &str = r#"
const [pattern, done] = [arguments[0], arguments[arguments.length - 1]];
window.got = [];
const url = '/.well-known/mercure?match_urlpattern=' + encodeURIComponent(pattern);
const source = new EventSource(url, { withCredentials: true });
source.onmessage = (e) => window.got.push(e.data);
source.onopen = () => done('open');
source.onerror = () => { source.close(); done('error'); };
"#;

#[test]
fn a_browser_eventsource_authorized_by_the_access_token_cookie_gets_its_private_updates() {
    if !have_browser(
        "a_browser_eventsource_authorized_by_the_access_token_cookie_gets_its_private_updates",
    ) {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    // Plain HTTP: a cookie name without the __Secure- prefix.
    let hub = HubProcess::start(&jwt::hub_args(&["--cookie-name", "mercure_access_token"]));
    let driver = Driver::start();
    let session = Session::new(&driver, &[]);
    let origin = format!("http://{}", hub.addr);
    private_update_by_cookie(&hub, &session, &origin, "mercure_access_token");
}

#[test]
fn a_browser_over_https_gets_its_private_update_by_the_secure_cookie() {
    if !have_browser("a_browser_over_https_gets_its_private_update_by_the_secure_cookie") {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let ca = util::tls::TestCa::new();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-https");
    let flags = ca.leaf("hub").write_flags(&dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // HTTPS, and the default cookie name: __Secure-mercure_access_token,
    // which a browser keeps only from a secure origin.
    let hub = HubProcess::start(&jwt::hub_args(&flags)).with_tls(ca.client_config(&[]));
    let driver = Driver::start();
    // The test's CA is not in the browser's store: its errors are ignored,
    // and the origin is still https (a secure context, Secure cookies).
    let session = Session::new(&driver, &["--ignore-certificate-errors"]);
    let origin = format!("https://localhost:{}", hub.addr.port());
    let cookie = "__Secure-mercure_access_token";
    private_update_by_cookie(&hub, &session, &origin, cookie);
    let scheme = session.call(
        "POST",
        "execute/sync",
        json!({ "script": "return location.protocol", "args": [] }),
    );
    assert_eq!(scheme, json!("https:"));
}

/// On the hub's page at `origin`, a Mercure 1.0 `EventSource` is refused
/// without a token; with the access token cookie named `cookie` (set
/// through WebDriver) it opens, and receives the private update its grant
/// allows, a public one, and no other.
fn private_update_by_cookie(hub: &HubProcess, session: &Session<'_>, origin: &str, cookie: &str) {
    let (iss, aud) = (jwt::ISS, jwt::AUD);
    let reader = jwt::access(
        iss,
        aud,
        json!([jwt::detail(
            &["subscribe"],
            &[("https://example.com/books/1", None)]
        )]),
    );
    let publisher = jwt::access(iss, aud, json!([jwt::detail(&["publish"], &[("*", None)])]));
    session.call("POST", "url", json!({ "url": format!("{origin}/") }));
    let pattern = "https://example.com/books/:id";
    // No cookie yet: no token, and no anonymous subscribers here.
    assert_eq!(
        session.wait_for(MERCURE_1_LISTEN, json!([pattern])),
        json!("error")
    );
    session.call(
        "POST",
        "cookie",
        json!({ "cookie": {
            "name": cookie, "value": reader, "secure": origin.starts_with("https:"),
            "path": "/.well-known/mercure", "httpOnly": true, "sameSite": "Strict",
        }}),
    );
    assert_eq!(
        session.wait_for(MERCURE_1_LISTEN, json!([pattern])),
        json!("open")
    );
    let auth = format!("Bearer {publisher}");
    for fields in [
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F2&data=not%20yours&private=on",
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=book%201%20for%20you&private=on",
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F3&data=public%203",
    ] {
        let (head, body) = hub.request(
            "POST",
            "/.well-known/mercure",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            fields.as_bytes(),
        );
        assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let got = session.wait_for(MERCURE_GOT, json!([2]));
    assert_eq!(
        got,
        json!(["book 1 for you", "public 3"]),
        "its grant's private update, and no other"
    );
}

/// An HS256 token allowed to publish anywhere, signed by the tests' own
/// JWT code.
fn hs256_publish_all(secret: &str) -> String {
    jwt::hs256(secret, &json!({ "mercure": { "publish": ["*"] } }))
}

#[test]
fn demo_page_shows_published_events_live() {
    if !have_browser("demo_page_shows_published_events_live") {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let hub = HubProcess::start_0x(&[]);
    let driver = Driver::start();
    let session = Session::new(&driver, &[]);
    session.call(
        "POST",
        "url",
        json!({ "url": format!("http://{}/?topic=demo", hub.addr) }),
    );

    // The page's EventSource connected and shows its seid.
    let seid = session.wait_for(WAIT_TEXT, json!(["seid", null]));
    let seid = seid.as_str().unwrap().to_owned();
    let (_, clients) = hub.request("GET", "/clients", &[], b"");
    let clients: Value = serde_json::from_slice(&clients).unwrap();
    assert!(
        clients
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["seid"] == seid.as_str() && c["topics"] == json!(["demo"])),
        "the page's seid {seid} is live on topic demo: {clients}"
    );

    // Published over HTTP, seen on the page — markup arrives as text.
    let message = "hello from the test <b>not bold</b>";
    let (status, id) = hub.publish("?topic=demo", message);
    assert_eq!(status, 200);
    let log = session.wait_for(WAIT_TEXT, json!(["log", message]));
    assert!(log.as_str().unwrap().contains(&format!("#{id}")), "{log}");
    let bold = session.call(
        "POST",
        "execute/sync",
        json!({ "script": "return document.querySelectorAll('#log b').length", "args": [] }),
    );
    assert_eq!(bold, json!(0), "published data must never become markup");

    // A named event shows too, with its type (an EventSource would only
    // hand the page types it named in advance).
    let (status, id) = hub.publish("?topic=demo&event=headline", "named news");
    assert_eq!(status, 200);
    let log = session.wait_for(WAIT_TEXT, json!(["log", "named news"]));
    assert!(
        log.as_str().unwrap().contains(&format!("headline #{id}")),
        "{log}"
    );

    // The page's own publish box reaches other subscribers.
    let (mut listener, _) = hub.subscribe("/events?topic=demo");
    session.call(
        "POST",
        "execute/sync",
        json!({ "script": "document.getElementById('message').value = 'from the page'; document.getElementById('topic').value = 'demo'; document.querySelector('#publish button').click();", "args": [] }),
    );
    assert_eq!(listener.next().data, "from the page");
    session.wait_for(WAIT_TEXT, json!(["log", "from the page"]));
}

/// Resolves with the value of the expression `arguments[0]` once it is
/// truthy (polled in the page; the driver's script timeout is the deadline).
const WAIT_UNTIL: &str = r#"
const [expression, done] = [arguments[0], arguments[arguments.length - 1]];
const check = () => {
  let value;
  try { value = eval(expression); } catch (e) { value = undefined; }
  if (value) done(value); else setTimeout(check, 20);
};
check();
"#;

#[test]
fn the_debugger_subscribes_publishes_lists_and_charts() {
    if !have_browser("the_debugger_subscribes_publishes_lists_and_charts") {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let hub = HubProcess::start(&jwt::hub_args(&[
        "--debugger",
        "--subscriptions",
        "--anonymous",
    ]));
    let everything = json!([jwt::detail(&["publish", "subscribe"], &[("*", None)])]);
    let token = jwt::access(jwt::ISS, jwt::AUD, everything);
    let driver = Driver::start();
    let session = Session::new(&driver, &[]);
    session.call(
        "POST",
        "window/rect",
        json!({ "width": 1280, "height": 1100 }),
    );
    session.call(
        "POST",
        "url",
        json!({ "url": format!("http://{}/.well-known/mercure/debug/", hub.addr) }),
    );
    let run = |script: &str, args: Value| {
        session.call(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": args }),
        )
    };
    let until = |expression: &str| session.wait_for(WAIT_UNTIL, json!([expression]));
    // The token (kept in the page), a URL Pattern, subscribe.
    run(
        r#"const [token] = arguments;
           document.getElementById("token").value = token;
           document.getElementById("token").dispatchEvent(new Event("input"));
           document.getElementById("matchers").value = "https://example.com/books/:id";
           document.getElementById("subscribe").click();"#,
        json!([token]),
    );
    until(r##"document.getElementById("sub-status").dataset.state === "open""##);
    let claims = until(r##"document.getElementById("claims").textContent"##);
    assert!(claims.as_str().unwrap().contains(jwt::ISS), "{claims}");

    // A named update and a private one, published over HTTP.
    let auth = format!("Bearer {token}");
    for fields in [
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&type=book&data=a%20named%20one",
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F2&private=on&data=a%20private%20one",
    ] {
        let (head, _) = hub.request(
            "POST",
            "/.well-known/mercure",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            fields.as_bytes(),
        );
        assert_eq!(head.status, 200);
    }
    until(r##"document.querySelector('#updates tr[data-type="book"]')"##);
    until(
        r##"[...document.querySelectorAll("#updates td.data")].some(td => td.textContent === "a private one")"##,
    );

    // Published from the page's form, private: shown with its topics.
    run(
        r#"document.getElementById("pub-topics").value = "https://example.com/books/3";
           document.getElementById("pub-data").value = "from the page";
           document.getElementById("pub-private").checked = true;
           document.getElementById("publish").click();"#,
        json!([]),
    );
    let result = until(r##"document.getElementById("pub-result").textContent"##);
    assert!(
        result
            .as_str()
            .unwrap()
            .starts_with("published as urn:uuid:"),
        "{result}"
    );
    let row = until(r##"document.querySelector('#updates tr[data-private="true"]')?.textContent"##);
    assert!(
        row.as_str()
            .unwrap()
            .contains("https://example.com/books/3")
            && row.as_str().unwrap().contains("from the page"),
        "{row}"
    );

    // The subscriptions API: the page's own subscription is listed.
    run(
        r#"document.getElementById("list-subs").click();"#,
        json!([]),
    );
    let listed = until(r##"document.getElementById("subs").textContent"##);
    assert!(
        listed
            .as_str()
            .unwrap()
            .contains("https://example.com/books/:id"),
        "{listed}"
    );

    // The charts have drawn points after the traffic: a publish rate above
    // zero and an open stream, read off the SVG.
    until(
        r##"document.querySelector("#chart-publishes polyline").getAttribute("points").split(" ").some(p => Number(p.split(",")[1]) < 100)"##,
    );
    let streams = until(
        r##"Number(document.querySelector("#chart-streams polyline").dataset.points) >= 2 && document.getElementById("now-streams").textContent"##,
    );
    assert_eq!(streams, json!("1"), "one open stream: the page's");

    // A screenshot, compared against nothing: the README's picture, once a
    // few more publishes have been charted.
    for n in 0..30 {
        let target = format!("/publish?topic=news&event=tick&id=t{n}");
        let (head, _) = hub.request("POST", &target, &[("Authorization", &auth)], b"tick");
        assert_eq!(head.status, 200);
    }
    until(
        r##"Number(document.querySelector("#chart-publishes polyline").dataset.points) >= 4 && document.querySelector("#chart-publishes polyline").dataset.points"##,
    );
    let png = driver.call("GET", &format!("/session/{}/screenshot", session.id), None);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("debugger.png");
    std::fs::write(&path, bytes).unwrap();
    eprintln!("the debugger's screenshot: {}", path.display());
}
