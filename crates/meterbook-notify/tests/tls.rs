//! The `tls` feature against real TLS receivers: an HTTPS receiver on a
//! thread of the test (rustls, with a certificate from a throwaway CA that
//! openssl makes), and the STARTTLS server `scripts/smtp.sh start` runs
//! (MB_TEST_SMTP_TLS_ADDR, its CA in MB_TEST_SMTP_CA). The client trusts the
//! platform's store, which on Linux honours `SSL_CERT_FILE`: the tests point
//! it at a bundle of the two test CAs, so that what they check is the real
//! verification path, not a switch that turns it off.
#![cfg(feature = "tls")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use meterbook_notify::{
    send_email, verify, Email, SendError, SmtpSettings, Webhook, WebhookClient,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

struct Pki {
    _dir: tempfile::TempDir,
    trusted: PathBuf,
    untrusted: PathBuf,
    other_name: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA in `dir/NAME` and a leaf for `san` it signs (ca.pem, cert.pem, key.pem).
fn make_ca(dir: &Path, name: &str, san: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let p = |f: &str| d.join(f).to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-days",
                "2",
                "-subj",
                &format!("/CN=Meterbook test CA {name}"),
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-subj",
                "/CN=receiver",
                "-keyout",
                &p("key.pem"),
                "-out",
                &p("cert.csr"),
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("ext"),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("cert.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext"),
        "-out",
        &p("cert.pem"),
    ]);
    d
}

/// Three PKIs: one whose CA the client trusts (its leaf valid for localhost
/// and 127.0.0.1), one it does not, and a trusted one whose leaf is for
/// another name. Sets SSL_CERT_FILE once per process,
/// before any client exists.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let trusted = make_ca(dir.path(), "trusted", "DNS:localhost,IP:127.0.0.1");
        let untrusted = make_ca(dir.path(), "untrusted", "DNS:localhost,IP:127.0.0.1");
        let other_name = make_ca(dir.path(), "other-name", "DNS:receiver.example");
        let mut bundle = std::fs::read_to_string(trusted.join("ca.pem")).unwrap();
        bundle.push_str(&std::fs::read_to_string(other_name.join("ca.pem")).unwrap());
        if let Ok(smtp_ca) = std::env::var("MB_TEST_SMTP_CA") {
            bundle.push_str(&std::fs::read_to_string(smtp_ca).unwrap());
        }
        let bundle_path = dir.path().join("bundle.pem");
        std::fs::write(&bundle_path, bundle).unwrap();
        // Edition 2021: set_var is safe; this runs once, before any client.
        std::env::set_var("SSL_CERT_FILE", &bundle_path);
        std::env::remove_var("SSL_CERT_DIR");
        Pki {
            _dir: dir,
            trusted,
            untrusted,
            other_name,
        }
    })
}

/// A request as received: lower-cased header names and values, the body.
type Seen = (Vec<(String, String)>, Vec<u8>);

/// An HTTPS receiver answering 200 with the leaf in `ca_dir`; it records the
/// requests that got through the handshake.
fn https_receiver(ca_dir: &Path) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let certs = CertificateDer::pem_file_iter(ca_dir.join("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(ca_dir.join("key.pem")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut headers = Vec::new();
            let mut line = String::new();
            // A failed handshake shows here as a read error: nothing recorded.
            if reader.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() {
                    break;
                }
                let h = h.trim_end().to_owned();
                if h.is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            record.lock().unwrap().push((headers, body));
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, seen)
}

const SECRET: &[u8] = b"derived-channel-secret";
const BODY: &[u8] = br#"{"kind":"period.closed","period":"2026-10"}"#;

fn post(url: &str) -> Result<(), SendError> {
    WebhookClient::new(Duration::from_secs(5), true).post(
        &Webhook {
            url,
            secret: SECRET,
            event_kind: "period.closed",
            delivery_id: "dlv_7",
            body: BODY,
        },
        1_796_000_000,
    )
}

#[test]
fn https_to_a_receiver_with_a_trusted_certificate() {
    let pki = pki();
    let (port, seen) = https_receiver(&pki.trusted);
    for host in ["localhost", "127.0.0.1"] {
        post(&format!("https://{host}:{port}/hook")).unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let (headers, body) = &seen[0];
    assert_eq!(body, BODY);
    let sig = &headers
        .iter()
        .find(|(n, _)| n == "meterbook-signature")
        .unwrap()
        .1;
    assert!(verify(SECRET, sig, body, 1_796_000_000, 300));
}

#[test]
fn https_to_an_untrusted_certificate_fails_before_sending() {
    let pki = pki();
    let (port, seen) = https_receiver(&pki.untrusted);
    let err = post(&format!("https://localhost:{port}/hook?token=tok_secret")).unwrap_err();
    assert!(err.message.contains(&format!("localhost:{port}")), "{err}");
    assert!(err.message.contains("certificate"), "{err}");
    assert!(!err.message.contains("tok_secret"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        seen.lock().unwrap().is_empty(),
        "the body went to an unverified receiver"
    );
}

#[test]
fn https_to_a_name_the_certificate_does_not_cover_fails() {
    let pki = pki();
    // A chain the client trusts, but the leaf is for receiver.example.
    let (port, seen) = https_receiver(&pki.other_name);
    let err = post(&format!("https://localhost:{port}/hook")).unwrap_err();
    assert!(err.message.contains(&format!("localhost:{port}")), "{err}");
    assert!(err.message.contains("certificate"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(seen.lock().unwrap().is_empty());
}

fn smtp_tls_server(test: &str) -> Option<(String, u16, PathBuf)> {
    match (
        std::env::var("MB_TEST_SMTP_TLS_ADDR"),
        std::env::var("MB_TEST_SMTP_MAILDIR"),
    ) {
        (Ok(addr), Ok(maildir)) => {
            let (host, port) = addr.rsplit_once(':').unwrap();
            Some((
                host.to_owned(),
                port.parse().unwrap(),
                PathBuf::from(maildir),
            ))
        }
        _ => {
            assert!(
                std::env::var("MB_REQUIRE_SMTP").as_deref() != Ok("1"),
                "{test}: MB_REQUIRE_SMTP=1 but MB_TEST_SMTP_TLS_ADDR is not set (scripts/smtp.sh needs openssl for it)"
            );
            eprintln!("{test}: skipped (no STARTTLS server: run scripts/smtp.sh start and source its env file)");
            None
        }
    }
}

#[test]
fn starttls_to_a_relay_that_requires_it() {
    pki();
    let Some((host, port, maildir)) = smtp_tls_server("starttls_to_a_relay_that_requires_it")
    else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let m = Email {
        to: "finance@customer.example".into(),
        subject: "Sent over STARTTLS".into(),
        text: "Encrypted on the way to the relay.\n".into(),
        message_id: format!("<tls-{}-{nanos}@meterbook.example>", std::process::id()),
    };
    let mut s = SmtpSettings {
        host,
        port,
        from: "Meterbook <billing@meterbook.example>".into(),
        timeout: Duration::from_secs(10),
        starttls: false,
        credentials: None,
    };
    // Without STARTTLS the relay refuses the mail (530): permanent.
    let err = send_email(&s, &m).unwrap_err();
    assert!(!err.retryable, "{err}");
    s.starttls = true;
    send_email(&s, &m).unwrap();
    let found = (0..200).any(|_| {
        let hit = std::fs::read_dir(maildir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|raw| raw.contains(&m.message_id))
            });
        if !hit {
            std::thread::sleep(Duration::from_millis(50));
        }
        hit
    });
    assert!(found, "{} not in the maildir", m.message_id);
}
