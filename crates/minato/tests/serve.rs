//! `minato serve` as an operator sees it: HTTPS with a real certificate, health endpoints,
//! JSON request logs, settings from the config file, and a graceful SIGTERM that lets an
//! in-flight upload finish before exiting 0.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, free_port};

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn health_and_readiness_answer_200() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    assert!(http_get(&server.addr, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&server.addr, "/readyz").starts_with("HTTP/1.1 200"));
}

#[test]
fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let _server = Server::start_on(
        &dir.path().join("data"),
        &format!("127.0.0.1:{port}"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let answer = client
        .get(format!("https://localhost:{port}/v2/"))
        .send()
        .expect("HTTPS request with the generated CA");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    let untrusting = reqwest::blocking::Client::builder()
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("https://localhost:{port}/v2/"))
            .send()
            .is_err()
    );
}

#[test]
fn settings_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("minato.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:{port}\"\npage-size = 2\n"),
    )
    .unwrap();
    let server = Server::start_on(
        &dir.path().join("data"),
        &format!("127.0.0.1:{port}"),
        &["--config", config.to_str().unwrap()],
    );
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    for repo in ["a", "b", "c"] {
        let answer = client
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                server.url()
            ))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 201);
    }
    let page = client
        .get(format!("{}/v2/_catalog", server.url()))
        .send()
        .unwrap();
    assert_eq!(
        page.headers()["link"],
        "</v2/_catalog?n=2&last=b>; rel=\"next\""
    );
    let body: serde_json::Value = page.json().unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["a", "b"]));
}

#[test]
fn request_lines_are_logged_as_json_at_info_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let log = data.with_extension("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_minato"))
        .args(["serve", "--no-auth", "--log-format", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .env("MINATO_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while TcpStream::connect(&addr).is_err() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(http_get(&addr, "/v2/").starts_with("HTTP/1.1 200"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["path"] == "/v2/")
        .unwrap_or_else(|| panic!("no JSON request line in {text}"));
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "GET");
}

#[test]
fn sigterm_lets_an_in_flight_upload_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"));
    let payload = vec![7u8; 64 * 1024];
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&payload))
    );

    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /v2/demo/app/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        payload.len()
    )
    .unwrap();
    stream.write_all(&payload[..1024]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&payload[1024..]).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "in-flight upload was cut: {answer:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        TcpStream::connect(&server.addr).is_err(),
        "listener still open"
    );
    server.kill();
}
