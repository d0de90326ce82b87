//! The `--metrics-addr` listener: answers `GET /metrics` with [`super::global`]'s text.
//!
//! Owns one TCP listener and its accept task, nothing else: each connection gets one answer and
//! is closed (a scraper opens one per scrape). The listener is bound before the run's first
//! request, so a bad or busy address is a usage error while nothing has been fetched; it stops
//! when the [`Listening`] handle drops, which is when the command returns.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{ExitKind, UserFacing};

/// The longest request head read: a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// How long a connection may take to send its request: a stuck client must not pile up tasks.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why `--metrics-addr` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsAddrError {
    #[error("--metrics-addr `{value}` is not HOST:PORT")]
    Malformed { value: String },
    #[error("cannot listen on --metrics-addr `{value}`: {source}")]
    Bind {
        value: String,
        #[source]
        source: std::io::Error,
    },
}

impl UserFacing for MetricsAddrError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            MetricsAddrError::Malformed { .. } => {
                "give a host and a port, e.g. --metrics-addr 127.0.0.1:9464".into()
            }
            MetricsAddrError::Bind { .. } => {
                "pick a free port on an address of this machine, e.g. 127.0.0.1:9464".into()
            }
        })
    }
}

/// The metrics endpoint while it is served; dropping it closes the listener.
#[derive(Debug)]
pub struct Listening {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// The bound address (the port the system picked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `value` (`HOST:PORT`) and serves the metrics there until the handle drops.
///
/// # Errors
/// `Malformed` when `value` is not a host and a port, `Bind` when it cannot be listened on
/// (in use, not an address of this machine, a privileged port).
pub async fn serve(value: &str) -> Result<Listening, MetricsAddrError> {
    let malformed = || MetricsAddrError::Malformed {
        value: value.to_string(),
    };
    let addr = tokio::net::lookup_host(value)
        .await
        .map_err(|_| malformed())?
        .next()
        .ok_or_else(malformed)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsAddrError::Bind {
            value: value.to_string(),
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!("serving metrics on http://{addr}/metrics");
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream));
                }
                Err(e) => {
                    tracing::debug!("metrics listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(Listening { addr, task })
}

/// Reads one request head and answers it; errors only end this connection.
async fn answer(mut stream: TcpStream) {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        _ => return,
    };
    let response = respond(&head);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The whole HTTP/1.1 response to a request head.
fn respond(head: &str) -> String {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next(), words.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let (status, content_type, body) = match (method, path) {
        (Some("GET" | "HEAD"), Some("/metrics")) => {
            ("200 OK", CONTENT_TYPE, super::global().encode())
        }
        (Some("GET" | "HEAD"), _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "the metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET /metrics is served\n".to_string(),
        ),
    };
    let body = if method == Some("HEAD") { "" } else { &body };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert!(respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(respond("GET /metrics?x=1 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(respond("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(respond("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(respond("").starts_with("HTTP/1.1 405"));
    }

    #[tokio::test]
    async fn a_bad_address_is_a_usage_error_naming_it() {
        for value in ["nonsense", "127.0.0.1", "127.0.0.1:99999"] {
            let e = serve(value).await.unwrap_err();
            assert!(matches!(e, MetricsAddrError::Malformed { .. }), "{value}");
            assert!(e.to_string().contains(value), "{e}");
            assert_eq!(e.exit_kind(), ExitKind::Usage);
        }
        let taken = serve("127.0.0.1:0").await.unwrap();
        let e = serve(&taken.addr().to_string()).await.unwrap_err();
        assert!(matches!(e, MetricsAddrError::Bind { .. }), "{e}");
    }
}
