//! Bad answers from a provider give a classified error, never a panic or a
//! hang: a raw TCP server plays a provider whose compute API misbehaves.

use std::sync::Arc;
use std::time::Duration;

use oms_actors::openstack::{
    AuthSpec, Class, Client, ClientConfig, ComputeClient, Credentials, Domain, IdentityVersion,
    Interface, Named, ProviderError, Session,
};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    TruncatedJson,
    CutMidBody,
    HtmlErrorPage,
    EmptyBody,
    HugeBody,
    NeverAnswers,
    ClosesAtOnce,
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(head)
}

fn answer(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(mut stream: TcpStream, base: String, bad: Misbehaviour) {
    while let Some(head) = read_head(&mut stream).await {
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let reply = if path == "/v3/auth/tokens" {
            let body = format!(
                r#"{{"token": {{"expires_at": "2099-01-01T00:00:00.000000Z", "issued_at": "2098-12-31T23:00:00.000000Z",
                "project": {{"id": "p1"}}, "user": {{"id": "u1"}},
                "catalog": [{{"type": "compute", "endpoints": [{{"interface": "public", "region_id": "R", "region": "R", "url": "{base}/compute/v2.1"}}]}}]}}}}"#
            );
            answer(
                "201 Created",
                "Content-Type: application/json\r\nX-Subject-Token: tok\r\n",
                &body,
            )
        } else if path == "/compute/v2.1/" {
            answer(
                "200 OK",
                "Content-Type: application/json\r\n",
                r#"{"version": {"id": "v2.1", "version": "2.104", "min_version": "2.1"}}"#,
            )
        } else {
            match bad {
                Misbehaviour::TruncatedJson => answer(
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    r#"{"flavors": [{"id": "1", "na"#,
                ),
                Misbehaviour::CutMidBody => {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"flavors\": [",
                        )
                        .await;
                    return;
                }
                Misbehaviour::HtmlErrorPage => answer(
                    "500 Internal Server Error",
                    "Content-Type: text/html\r\n",
                    "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>",
                ),
                Misbehaviour::EmptyBody => {
                    answer("200 OK", "Content-Type: application/json\r\n", "")
                }
                Misbehaviour::HugeBody => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
                        .await;
                    let chunk = vec![b' '; 64 * 1024];
                    for _ in 0..160 {
                        let framed =
                            [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                        if stream.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                    continue;
                }
                Misbehaviour::NeverAnswers => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                Misbehaviour::ClosesAtOnce => return,
            }
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn provider(bad: Misbehaviour) -> (Arc<Session>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server_base = base.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, server_base.clone(), bad));
        }
    });
    let client = Client::new(ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    })
    .unwrap();
    let session = Session::new(
        client,
        AuthSpec {
            auth_url: format!("{base}/v3").parse().unwrap(),
            identity_version: IdentityVersion::V3,
            credentials: Credentials::Password {
                user: Named::Id("u1".into()),
                password: SecretString::from("pw"),
                project: Named::Name {
                    name: "p".into(),
                    domain: Domain::Id("default".into()),
                },
            },
            interface: Interface::Public,
        },
    );
    (session, task)
}

async fn flavors_error(bad: Misbehaviour) -> ProviderError {
    let (session, task) = provider(bad).await;
    let compute = ComputeClient::connect(session, "R").await.unwrap();
    // It must end (nextest kills a hang); how fast is not asserted.
    let error = compute.flavors().await.unwrap_err();
    task.abort();
    error
}

#[tokio::test]
async fn truncated_json_is_a_server_error() {
    let error = flavors_error(Misbehaviour::TruncatedJson).await;
    assert_eq!(error.class, Class::ServerError);
    assert!(
        error.message.contains("could not be decoded"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_error() {
    let error = flavors_error(Misbehaviour::CutMidBody).await;
    assert_eq!(error.class, Class::Transport);
}

#[tokio::test]
async fn html_error_page_is_a_server_error_with_its_text() {
    let error = flavors_error(Misbehaviour::HtmlErrorPage).await;
    assert_eq!((error.class, error.status), (Class::ServerError, Some(500)));
    assert!(
        error.message.contains("Internal Server Error"),
        "{}",
        error.message
    );
    assert!(!error.message.contains('<'), "{}", error.message);
}

#[tokio::test]
async fn empty_body_is_a_server_error() {
    let error = flavors_error(Misbehaviour::EmptyBody).await;
    assert_eq!(error.class, Class::ServerError);
}

#[tokio::test]
async fn ten_megabyte_body_is_refused() {
    let error = flavors_error(Misbehaviour::HugeBody).await;
    assert_eq!(error.class, Class::ServerError);
    assert!(error.message.contains("size limit"), "{}", error.message);
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out() {
    let error = flavors_error(Misbehaviour::NeverAnswers).await;
    assert_eq!(error.class, Class::Transport);
}

#[tokio::test]
async fn a_connection_closed_at_once_is_a_transport_error() {
    let error = flavors_error(Misbehaviour::ClosesAtOnce).await;
    assert_eq!(error.class, Class::Transport);
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let session = Session::new(
        Client::new(ClientConfig::default()).unwrap(),
        AuthSpec {
            auth_url: format!("http://{addr}/v3").parse().unwrap(),
            identity_version: IdentityVersion::V3,
            credentials: Credentials::Password {
                user: Named::Id("u".into()),
                password: SecretString::from("pw"),
                project: Named::Id("p".into()),
            },
            interface: Interface::Public,
        },
    );
    let error = session.token().await.unwrap_err();
    assert_eq!(error.class, Class::Transport);
    assert!(
        error.message.starts_with("could not connect"),
        "{}",
        error.message
    );
}
