//! Webhook delivery against a real HTTP receiver: a listener on 127.0.0.1
//! (port 0) on a thread of the test, answering with scripted statuses and
//! recording every request it gets, as a receiver's own logs would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meterbook_notify::{verify, Webhook, WebhookClient};

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

/// What the receiver answers: a status, extra header lines, a delay.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    extra: &'static str,
    delay: Duration,
}

const OK: Answer = Answer {
    status: 200,
    extra: "",
    delay: Duration::ZERO,
};

fn status(status: u16) -> Answer {
    Answer { status, ..OK }
}

struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    connections: Arc<Mutex<usize>>,
}

impl Receiver {
    /// Answers requests in turn with `script`; the last answer repeats.
    fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (reqs, conns) = (requests.clone(), connections.clone());
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                *conns.lock().unwrap() += 1;
                let answer = script[n.min(script.len() - 1)];
                let reqs = reqs.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    let Some(req) = read_request(&mut reader) else {
                        return;
                    };
                    reqs.lock().unwrap().push(req);
                    std::thread::sleep(answer.delay);
                    let _ = write!(
                        out,
                        "HTTP/1.1 {} Scripted\r\nContent-Length: 2\r\nConnection: close\r\n{}\r\nno",
                        answer.status, answer.extra
                    );
                });
            }
        });
        Receiver {
            port,
            requests,
            connections,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

const SECRET: &[u8] = b"derived-channel-secret-0123456789";
const BODY: &[u8] = br#"{"kind":"budget.threshold","budget":"Engineering","threshold_pct":80}"#;
const NOW: i64 = 1_796_000_000;

fn hook(url: &str) -> Webhook<'_> {
    Webhook {
        url,
        secret: SECRET,
        event_kind: "budget.threshold",
        delivery_id: "dlv_42",
        body: BODY,
    }
}

fn client() -> WebhookClient {
    WebhookClient::new(Duration::from_secs(5), true)
}

/// A message may name the host and status, never the secret, the body or the
/// URL's path and query.
fn assert_clean(message: &str) {
    for secret in [
        "derived-channel-secret",
        "budget.threshold",
        "Engineering",
        "tok_secret",
    ] {
        assert!(!message.contains(secret), "{message} leaks {secret}");
    }
}

#[test]
fn a_delivery_carries_the_headers_and_a_signature_that_verifies() {
    let rx = Receiver::start(vec![OK]);
    let url = rx.url("/hooks/meterbook?token=tok_secret");
    client().post(&hook(&url), NOW).unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/hooks/meterbook?token=tok_secret");
    assert_eq!(r.body, BODY);
    assert_eq!(r.header("Content-Type"), "application/json");
    assert_eq!(r.header("Meterbook-Event"), "budget.threshold");
    assert_eq!(r.header("Meterbook-Delivery"), "dlv_42");
    assert!(r.header("User-Agent").starts_with("Meterbook-Webhook/"));
    let sig = r.header("Meterbook-Signature");
    assert!(sig.starts_with(&format!("t={NOW},v1=")), "{sig}");

    // The receiver's side: within tolerance it verifies ...
    assert!(verify(SECRET, sig, &r.body, NOW, 300));
    assert!(verify(SECRET, sig, &r.body, NOW + 300, 300));
    // ... and not with another secret, another body, or too late.
    assert!(!verify(b"another secret", sig, &r.body, NOW, 300));
    let mut tampered = r.body.clone();
    tampered[r.body.len() - 3] = b'9';
    assert!(!verify(SECRET, sig, &tampered, NOW, 300));
    assert!(!verify(SECRET, sig, &r.body, NOW + 301, 300));
    assert!(!verify(SECRET, sig, &r.body, NOW - 301, 300));
}

#[test]
fn a_503_is_retryable_and_the_retry_succeeds_with_the_same_delivery_id() {
    let rx = Receiver::start(vec![status(503), OK]);
    let url = rx.url("/hook?token=tok_secret");
    let err = client().post(&hook(&url), NOW).unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(
        err.message.contains(&format!("127.0.0.1:{}", rx.port)),
        "{err}"
    );
    assert!(err.message.contains("503"), "{err}");
    assert_clean(&err.message);
    client().post(&hook(&url), NOW + 60).unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].header("Meterbook-Delivery"),
        reqs[1].header("Meterbook-Delivery")
    );
    // Signed anew at each attempt.
    assert!(reqs[1]
        .header("Meterbook-Signature")
        .starts_with(&format!("t={}", NOW + 60)));
}

#[test]
fn statuses_are_classified() {
    for (code, retryable) in [
        (400, false),
        (401, false),
        (404, false),
        (422, false),
        (408, true),
        (429, true),
        (500, true),
        (502, true),
    ] {
        let rx = Receiver::start(vec![status(code)]);
        let url = rx.url("/h");
        let err = client().post(&hook(&url), NOW).unwrap_err();
        assert_eq!(err.retryable, retryable, "{code}: {err}");
        assert!(err.message.contains(&code.to_string()), "{err}");
        assert_clean(&err.message);
        assert_eq!(rx.requests().len(), 1);
    }
    for code in [200, 201, 202, 204] {
        let rx = Receiver::start(vec![status(code)]);
        client().post(&hook(&rx.url("/h")), NOW).unwrap();
    }
}

#[test]
fn a_redirect_is_not_followed() {
    let elsewhere = Receiver::start(vec![OK]);
    let location: &'static str =
        Box::leak(format!("Location: {}\r\n", elsewhere.url("/stolen")).into_boxed_str());
    let rx = Receiver::start(vec![Answer {
        status: 301,
        extra: location,
        delay: Duration::ZERO,
    }]);
    let url = rx.url("/h");
    let err = client().post(&hook(&url), NOW).unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("301"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(elsewhere.connections(), 0, "the redirect was followed");
}

#[test]
fn a_slow_receiver_times_out_retryably() {
    let rx = Receiver::start(vec![Answer {
        delay: Duration::from_secs(3),
        ..OK
    }]);
    let url = rx.url("/h");
    let started = Instant::now();
    let err = WebhookClient::new(Duration::from_millis(500), true)
        .post(&hook(&url), NOW)
        .unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_closed_port_is_retryable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/h");
    let err = client().post(&hook(&url), NOW).unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn private_addresses_are_refused_without_connecting() {
    let rx = Receiver::start(vec![OK]);
    let guarded = WebhookClient::new(Duration::from_secs(5), false);
    let started = Instant::now();
    for url in [
        rx.url("/h"),
        format!("http://localhost:{}/h", rx.port),
        format!("http://[::ffff:127.0.0.1]:{}/h", rx.port),
        format!("http://[::1]:{}/h", rx.port),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.255.255.1/h".to_owned(),
        "http://192.168.0.1/h".to_owned(),
        "http://0.0.0.0/h".to_owned(),
    ] {
        let err = guarded.post(&hook(&url), NOW).unwrap_err();
        assert!(!err.retryable, "{url}: {err}");
        assert!(err.message.contains("private"), "{url}: {err}");
        assert_clean(&err.message);
    }
    // Refused before any connection (an unroutable 10.x would have hung).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(rx.connections(), 0);
    // The same receiver is reached when private addresses are allowed.
    client().post(&hook(&rx.url("/h")), NOW).unwrap();
    assert_eq!(rx.requests().len(), 1);
}

#[test]
fn bad_urls_and_header_values_are_permanent() {
    let rx = Receiver::start(vec![OK]);
    for url in ["ftp://127.0.0.1/h", "http://u:p@127.0.0.1/h", "not a url"] {
        let err = client().post(&hook(url), NOW).unwrap_err();
        assert!(!err.retryable, "{url}: {err}");
    }
    let url = rx.url("/h");
    for (kind, id) in [
        ("budget.threshold\r\nX-Evil: 1", "d"),
        ("k", ""),
        ("k", "d d"),
    ] {
        let w = Webhook {
            event_kind: kind,
            delivery_id: id,
            ..hook(&url)
        };
        assert!(!client().post(&w, NOW).unwrap_err().retryable);
    }
    assert_eq!(rx.connections(), 0);
    if !cfg!(feature = "tls") {
        let err = client()
            .post(&hook("https://127.0.0.1:1/h"), NOW)
            .unwrap_err();
        assert!(!err.retryable && err.message.contains("tls"), "{err}");
    }
}
