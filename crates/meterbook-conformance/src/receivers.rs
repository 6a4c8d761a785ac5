//! Real receivers for notification tests: an HTTP server that records the
//! webhooks it gets (answering a scripted status sequence), and the SMTP
//! server scripts/test.sh starts (aiosmtpd, which keeps each message in a
//! maildir), read back by Message-ID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver on a free port that answers the statuses of `script` in
/// turn (then 200), recording every request.
pub fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/meterbook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.trim_end().split_once(':') {
                    let (k, v) = (k.trim().to_string(), v.trim().to_string());
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.parse().unwrap_or(0);
                    }
                    headers.push((k, v));
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            log.lock().unwrap().push(Received { headers, body });
            let status = script.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

/// The SMTP server scripts/test.sh starts: (host, port, maildir), or `None`
/// (skipped with a note) unless MB_REQUIRE_SMTP=1.
pub fn smtp_server() -> Option<(String, u16, PathBuf)> {
    match (
        std::env::var("MB_TEST_SMTP_ADDR"),
        std::env::var("MB_TEST_SMTP_MAILDIR"),
    ) {
        (Ok(addr), Ok(dir)) => {
            let (h, p) = addr
                .rsplit_once(':')
                .expect("MB_TEST_SMTP_ADDR is HOST:PORT");
            Some((h.to_string(), p.parse().unwrap(), PathBuf::from(dir)))
        }
        _ => {
            assert!(
                std::env::var("MB_REQUIRE_SMTP").as_deref() != Ok("1"),
                "MB_REQUIRE_SMTP=1 but MB_TEST_SMTP_ADDR or MB_TEST_SMTP_MAILDIR is not set"
            );
            eprintln!("note: no SMTP server (scripts/smtp.sh start): e-mail is not read back");
            None
        }
    }
}

/// The message with `message_id` in the maildir (new/ or cur/), waiting a
/// little for the server to write it.
pub fn read_back(maildir: &Path, message_id: &str) -> String {
    for _ in 0..100 {
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if text.contains(message_id) {
                    return text;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{message_id} not in {}", maildir.display());
}

/// How many messages with `message_id` the maildir holds (a message sent
/// twice is there twice).
pub fn count_in_maildir(maildir: &Path, message_id: &str) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .map(|t| t.contains(message_id))
                .unwrap_or(false)
        })
        .count()
}
