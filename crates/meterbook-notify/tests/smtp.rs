//! E-mail delivery against a real SMTP server: `scripts/smtp.sh start` runs
//! aiosmtpd, which stores each message it accepts in a maildir; these tests
//! send through it and read the messages back. Without `MB_TEST_SMTP_ADDR`
//! the real-server tests pass with a note, unless `MB_REQUIRE_SMTP=1`
//! (scripts/test.sh sets it), which makes them fail. The refusal and
//! classification tests need no server: they use closed ports and a scripted
//! one of their own.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meterbook_notify::{send_email, Email, SmtpCredentials, SmtpSettings};
use std::sync::{Arc, Mutex};

fn server(test: &str) -> Option<(String, u16, PathBuf)> {
    match (
        std::env::var("MB_TEST_SMTP_ADDR"),
        std::env::var("MB_TEST_SMTP_MAILDIR"),
    ) {
        (Ok(addr), Ok(maildir)) => {
            let (host, port) = addr
                .rsplit_once(':')
                .expect("MB_TEST_SMTP_ADDR is host:port");
            Some((
                host.to_owned(),
                port.parse().unwrap(),
                PathBuf::from(maildir),
            ))
        }
        _ => {
            assert!(
                std::env::var("MB_REQUIRE_SMTP").as_deref() != Ok("1"),
                "{test}: MB_REQUIRE_SMTP=1 but MB_TEST_SMTP_ADDR or MB_TEST_SMTP_MAILDIR is not set"
            );
            eprintln!("{test}: skipped (no SMTP server: run scripts/smtp.sh start and source its env file)");
            None
        }
    }
}

fn settings(host: &str, port: u16) -> SmtpSettings {
    SmtpSettings {
        host: host.to_owned(),
        port,
        from: "Meterbook <billing@meterbook.example>".into(),
        timeout: Duration::from_secs(10),
        starttls: false,
        credentials: None,
    }
}

/// A Message-ID no other run or test shares (the maildir may be shared).
fn unique_id(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("<{tag}-{}-{nanos}@meterbook.example>", std::process::id())
}

/// The raw message whose Message-ID header is `id`, waiting a little for the
/// server to write it.
fn read_back(maildir: &Path, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                if header(&raw, "Message-ID").as_deref() == Some(id) {
                    return raw;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "message {id} not found in {}",
            maildir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn split(raw: &str) -> (String, String) {
    let raw = raw.replace("\r\n", "\n");
    match raw.split_once("\n\n") {
        Some((h, b)) => (h.to_owned(), b.to_owned()),
        None => (raw, String::new()),
    }
}

/// A header's unfolded raw value (case-insensitive name).
fn header(raw: &str, name: &str) -> Option<String> {
    let (head, _) = split(raw);
    let mut unfolded: Vec<String> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = unfolded.last_mut() {
                last.push_str(line);
            }
        } else {
            unfolded.push(line.to_owned());
        }
    }
    unfolded.iter().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn b64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = A.iter().position(|&x| x == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hex(b: u8) -> u8 {
    (b as char).to_digit(16).expect("hex digit") as u8
}

fn quoted_printable(s: &str, underscore_is_space: bool) -> Vec<u8> {
    let s = s.replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' => {
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 3;
            }
            b'_' if underscore_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`);
/// whitespace between two encoded words is dropped, as the RFC says.
fn decode_words(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let word = &rest[start + 2..];
        let mut parts = word.splitn(3, '?');
        let (_charset, enc, tail) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let end = tail.find("?=").expect("encoded word ends");
        let text = &tail[..end];
        let bytes = match enc {
            "b" | "B" => b64(text),
            _ => quoted_printable(text, true),
        };
        out.push_str(&String::from_utf8(bytes).expect("UTF-8 word"));
        rest = &tail[end + 2..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

fn body(raw: &str) -> String {
    let (_, body) = split(raw);
    let bytes = match header(raw, "Content-Transfer-Encoding").as_deref() {
        Some("base64") => b64(&body),
        Some("quoted-printable") => quoted_printable(&body, false),
        _ => body.into_bytes(),
    };
    String::from_utf8(bytes).unwrap().replace("\r\n", "\n")
}

#[test]
fn two_messages_are_delivered_and_read_back() {
    let Some((host, port, maildir)) = server("two_messages_are_delivered_and_read_back") else {
        return;
    };
    let s = settings(&host, port);
    let long_line = "Forecast for enrollment 100001: ".to_owned()
        + &"charges to month end 12,345.678901 USD; ".repeat(12);
    let mails = [
        Email {
            to: "finance@customer.example".into(),
            subject: "Budget alert: 80 % of ‘Engineering’ reached — Überschreitung droht".into(),
            text: format!("Hello,\n\n{long_line}\nBudget: 10 000 € (80 %).\n"),
            message_id: unique_id("delivery-1"),
        },
        Email {
            to: "Ops Team <ops@customer.example>".into(),
            subject: "Period 2026-10 closed".into(),
            text: "The period 2026-10 is closed; statements are final.\n".into(),
            message_id: unique_id("delivery-2"),
        },
    ];
    for m in &mails {
        send_email(&s, m).unwrap_or_else(|e| panic!("send {}: {e}", m.message_id));
    }
    // As written on the wire: a display name is quoted.
    let to_headers = [
        "finance@customer.example",
        "\"Ops Team\" <ops@customer.example>",
    ];
    for (m, to) in mails.iter().zip(to_headers) {
        let raw = read_back(&maildir, &m.message_id);
        assert_eq!(header(&raw, "To").as_deref(), Some(to), "{raw}");
        assert_eq!(
            header(&raw, "From").as_deref(),
            Some("Meterbook <billing@meterbook.example>")
        );
        assert_eq!(decode_words(&header(&raw, "Subject").unwrap()), m.subject);
        // (The maildir adds a final line break of its own.)
        assert_eq!(
            body(&raw).trim_end_matches('\n'),
            m.text.trim_end_matches('\n')
        );
        assert!(header(&raw, "Date").is_some());
        // The envelope, as the server saw it (aiosmtpd adds these).
        assert_eq!(
            header(&raw, "X-MailFrom").as_deref(),
            Some("billing@meterbook.example")
        );
        let rcpt = header(&raw, "X-RcptTo").unwrap();
        assert!(m.to.contains(&rcpt), "envelope recipient {rcpt}");
        // Properly encoded: headers and body are 7-bit with short lines.
        for line in raw.lines() {
            assert!(line.is_ascii(), "8-bit line: {line}");
            assert!(line.len() <= 998, "line of {} characters", line.len());
        }
        assert!(raw.lines().all(|l| l.len() <= 200));
    }
    // The first mail's body has non-ASCII text and a 500-character line: it
    // must have been transfer-encoded.
    let raw = read_back(&maildir, &mails[0].message_id);
    let cte = header(&raw, "Content-Transfer-Encoding").unwrap();
    assert!(cte == "quoted-printable" || cte == "base64", "{cte}");
    assert!(header(&raw, "Subject").unwrap().contains("=?utf-8?"));
}

#[test]
fn a_retry_reuses_the_message_id() {
    let Some((host, port, maildir)) = server("a_retry_reuses_the_message_id") else {
        return;
    };
    let m = Email {
        to: "finance@customer.example".into(),
        subject: "Usage watermark moved".into(),
        text: "Usage is complete up to 2026-11-29.\n".into(),
        message_id: unique_id("delivery-retry"),
    };
    send_email(&settings(&host, port), &m).unwrap();
    send_email(&settings(&host, port), &m).unwrap();
    let copies = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|raw| {
                header(&raw, "Message-ID").as_deref() == Some(m.message_id.as_str())
            })
        })
        .count();
    assert_eq!(copies, 2, "both copies carry the one Message-ID");
}

#[test]
fn a_relay_that_refuses_connections_is_retryable_and_named() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = Email {
        to: "finance@customer.example".into(),
        subject: "x".into(),
        text: "x".into(),
        message_id: unique_id("refused"),
    };
    let err = send_email(&settings("127.0.0.1", port), &m).unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// A scripted relay on a thread: greets, then answers each command from
/// `replies` (by its first word), and records what it got.
fn scripted_relay(replies: &'static [(&'static str, &'static str)], greet: bool) -> u16 {
    scripted_relay_recording(replies, greet).0
}

fn scripted_relay_recording(
    replies: &'static [(&'static str, &'static str)],
    greet: bool,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut out = stream.try_clone().unwrap();
        if !greet {
            std::thread::sleep(Duration::from_secs(5));
            return;
        }
        let _ = out.write_all(b"220 scripted ESMTP\r\n");
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            record.lock().unwrap().push(line.clone());
            let verb = line
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply = replies
                .iter()
                .find(|(v, _)| *v == verb)
                .map(|(_, r)| *r)
                .unwrap_or("250 ok");
            let _ = out.write_all(format!("{reply}\r\n").as_bytes());
            if verb == "QUIT" || reply.starts_with('4') || reply.starts_with('5') {
                return;
            }
        }
    });
    (port, seen)
}

fn one_mail() -> Email {
    Email {
        to: "finance@customer.example".into(),
        subject: "x".into(),
        text: "x".into(),
        message_id: unique_id("scripted"),
    }
}

#[test]
fn smtp_5xx_is_permanent_and_4xx_retryable() {
    let port = scripted_relay(&[("MAIL", "550 5.7.1 relaying denied")], true);
    let err = send_email(&settings("127.0.0.1", port), &one_mail()).unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");

    let port = scripted_relay(&[("RCPT", "451 4.3.0 try again later")], true);
    let err = send_email(&settings("127.0.0.1", port), &one_mail()).unwrap_err();
    assert!(err.retryable, "{err}");
}

#[test]
fn a_silent_relay_times_out_retryably() {
    let port = scripted_relay(&[], false);
    let s = SmtpSettings {
        timeout: Duration::from_millis(300),
        ..settings("127.0.0.1", port)
    };
    let started = Instant::now();
    let err = send_email(&s, &one_mail()).unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn bad_addresses_and_ids_are_permanent_and_nothing_is_sent() {
    // Any connection would be a failure of this test: nothing listens.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = settings("127.0.0.1", port);
    for (to, id) in [
        (
            "finance@customer.example\r\nBcc: evil@example.com",
            unique_id("x"),
        ),
        ("not an address", unique_id("x")),
        ("finance@customer.example", "no-angle-brackets@x".into()),
        (
            "finance@customer.example",
            "<a@b>\r\nBcc: evil@example.com".into(),
        ),
    ] {
        let m = Email {
            to: to.into(),
            message_id: id,
            ..one_mail()
        };
        let err = send_email(&s, &m).unwrap_err();
        assert!(!err.retryable, "{to}: {err}");
    }
    let bad_from = SmtpSettings {
        from: "Meterbook".into(),
        ..s
    };
    assert!(!send_email(&bad_from, &one_mail()).unwrap_err().retryable);
}

#[test]
fn starttls_without_the_feature_is_refused() {
    if cfg!(feature = "tls") {
        return;
    }
    let s = SmtpSettings {
        starttls: true,
        ..settings("127.0.0.1", 25)
    };
    let err = send_email(&s, &one_mail()).unwrap_err();
    assert!(!err.retryable && err.message.contains("tls"), "{err}");
}

#[test]
fn credentials_are_offered_to_a_loopback_relay_and_a_refusal_is_permanent() {
    let (port, seen) = scripted_relay_recording(
        &[
            ("EHLO", "250-scripted\r\n250 AUTH PLAIN LOGIN"),
            ("AUTH", "535 5.7.8 authentication failed"),
        ],
        true,
    );
    let s = SmtpSettings {
        credentials: Some(SmtpCredentials {
            user: "mailer".into(),
            password: "pa55-word".into(),
        }),
        ..settings("127.0.0.1", port)
    };
    let err = send_email(&s, &one_mail()).unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(!err.message.contains("pa55-word"), "{err}");
    let auth = seen
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("AUTH PLAIN "))
        .cloned()
        .expect("an AUTH PLAIN command");
    assert_eq!(b64(&auth["AUTH PLAIN ".len()..]), b"\0mailer\0pa55-word");
}

#[test]
fn a_password_is_not_sent_in_clear_over_a_network() {
    let s = SmtpSettings {
        credentials: Some(SmtpCredentials {
            user: "mailer".into(),
            password: "pa55-word".into(),
        }),
        ..settings("mail.customer.example", 25)
    };
    let err = send_email(&s, &one_mail()).unwrap_err();
    assert!(!err.retryable && err.message.contains("STARTTLS"), "{err}");
}
