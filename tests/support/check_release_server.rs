//! A loopback stand-in for GitHub's release API: serves scripted answers per path, records
//! every request, and can misbehave (rate-limit 403, garbage, never answer).

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// A `Link` header value (pagination); `{BASE}` becomes the server's `http://addr`.
    pub link: Option<String>,
    /// Never answer.
    pub hang: bool,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Self {
        Reply {
            status: 200,
            body: body.into(),
            link: None,
            hang: false,
        }
    }

    pub fn hang() -> Self {
        Reply {
            hang: true,
            ..Reply::ok("")
        }
    }
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub user_agent: String,
    pub accept: String,
}

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Serves `routes` (path with query → reply); other paths get 404.
    pub fn start(routes: HashMap<String, Reply>) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let recorded = requests.clone();
        let routes = Arc::new(routes);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let (stream, _) = tokio::select! {
                        _ = &mut stop_rx => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
                    };
                    let routes = routes.clone();
                    let recorded = recorded.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let routes = routes.clone();
                            let recorded = recorded.clone();
                            async move {
                                Ok::<_, Infallible>(answer(addr, &routes, &recorded, req).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Server {
            addr,
            requests,
            stop: Some(stop_tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn answer(
    addr: SocketAddr,
    routes: &HashMap<String, Reply>,
    recorded: &Mutex<Vec<Recorded>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    recorded.lock().unwrap().push(Recorded {
        path: path.clone(),
        user_agent: header("user-agent"),
        accept: header("accept"),
    });
    let Some(reply) = routes.get(&path) else {
        return Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(
                br#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}"#,
            )))
            .unwrap();
    };
    if reply.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let mut b = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json; charset=utf-8");
    if let Some(l) = &reply.link {
        b = b.header("link", l.replace("{BASE}", &format!("http://{addr}")));
    }
    b.body(Full::new(Bytes::from(reply.body.clone()))).unwrap()
}

/// One release object in GitHub's layout, with a Kata static tarball as first asset.
pub fn release(tag: &str, created: &str) -> serde_json::Value {
    let pre = tag.contains('-');
    let asset = format!("kata-static-{tag}-x86_64.tar.xz");
    serde_json::json!({
        "url": format!("https://api.github.com/repos/kata-containers/kata-containers/releases/{}", 80000000 + tag.len()),
        "html_url": format!("https://github.com/kata-containers/kata-containers/releases/tag/{tag}"),
        "id": 80000000 + tag.len(),
        "tag_name": tag,
        "target_commitish": "main",
        "name": format!("Kata Containers {tag}"),
        "draft": false,
        "prerelease": pre,
        "created_at": created,
        "published_at": created,
        "assets": [{
            "url": "https://api.github.com/repos/kata-containers/kata-containers/releases/assets/1",
            "id": 1,
            "name": asset,
            "label": "",
            "content_type": "application/x-xz",
            "state": "uploaded",
            "size": 260_000_000,
            "download_count": 1234,
            "created_at": created,
            "updated_at": created,
            "browser_download_url": format!("https://github.com/kata-containers/kata-containers/releases/download/{tag}/{asset}")
        }],
        "tarball_url": format!("https://api.github.com/repos/kata-containers/kata-containers/tarball/{tag}"),
        "zipball_url": format!("https://api.github.com/repos/kata-containers/kata-containers/zipball/{tag}"),
        "body": format!("Kata Containers {tag} release notes")
    })
}

/// A release page as GitHub sends it (newest first), from `(tag, created_at)` pairs.
pub fn page(tags: &[(&str, &str)]) -> String {
    serde_json::Value::Array(tags.iter().map(|(t, d)| release(t, d)).collect()).to_string()
}

pub const RATE_LIMIT_BODY: &str = r#"{"message":"API rate limit exceeded for 203.0.113.7. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#;
