//! A webhook receiver: a plain HTTP/1.1 server on a free port that records every request and
//! answers 200, or 500 for the first `fail_first` requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    /// The request line's path.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub refused: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver::serve(fail_first, None).await
    }

    /// Answers every request to `/hook` with `302` to `/elsewhere` (and records every request).
    pub async fn redirecting() -> Receiver {
        Receiver::serve(0, Some("/elsewhere")).await
    }

    async fn serve(fail_first: usize, redirect: Option<&'static str>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (g, r) = (got.clone(), refused.clone());
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let (g, r) = (g.clone(), r.clone());
                tokio::spawn(async move {
                    let mut reader = BufReader::new(sock);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                        let mut headers = Vec::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.trim().split_once(':') {
                                headers.push((k.trim().to_string(), v.trim().to_string()));
                            }
                        }
                        let len: usize = headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0u8; len];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let fail = r.fetch_add(1, Ordering::SeqCst) < fail_first;
                        if !fail {
                            g.lock().unwrap().push(Received {
                                path: path.clone(),
                                headers,
                                body: String::from_utf8_lossy(&body).to_string(),
                            });
                        }
                        let resp = match redirect {
                            Some(to) if path == "/hook" => {
                                format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
                            }
                            _ => {
                                let status = if fail { "500 Internal Server Error" } else { "200 OK" };
                                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n")
                            }
                        };
                        if reader.get_mut().write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { url, got, refused }
    }
}
