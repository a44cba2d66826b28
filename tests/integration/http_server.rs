//! A tiny HTTP/1.1 server on 127.0.0.1 for the `http>` tests: it records every request and
//! answers from a routing closure, one request per connection, and stops on drop (open
//! connections are shut down and every thread is joined, also when a test fails).

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the server read it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path and query, as sent (`/p?a=1`).
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub(crate) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// Every value of a header, in order (names compare case-insensitively).
    pub(crate) fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    pub(crate) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the server does with a request.
pub(crate) enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Never answers: holds the connection until the client hangs up (counted for
    /// [`Seen::wait_for_hang_ups`]), which shows that the client dropped the request.
    Hang,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub(crate) fn redirect(location: &str) -> Reply {
        Reply::Respond {
            status: 302,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

/// What a handler knows besides the request.
pub(crate) struct Seen<'a> {
    /// Requests to the same path before this one.
    pub(crate) earlier: usize,
    shared: &'a Shared,
}

impl Seen<'_> {
    /// Waits (at most `limit`) until `n` hanging requests were dropped by the client; whether
    /// they were.
    pub(crate) fn wait_for_hang_ups(&self, n: usize, limit: Duration) -> bool {
        let count = self.shared.hang_ups.lock().unwrap();
        let (count, _) = self
            .shared
            .hung_up
            .wait_timeout_while(count, limit, |c| *c < n)
            .unwrap();
        *count >= n
    }
}

type Handler = dyn Fn(&Request, &Seen<'_>) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    requests: Mutex<Vec<Request>>,
    stop: AtomicBool,
    hang_ups: Mutex<usize>,
    hung_up: Condvar,
    /// Clones of open connections, shut down on drop so hanging handlers return.
    open: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server that answers each request with `handler`.
    pub(crate) fn start(
        handler: impl Fn(&Request, &Seen<'_>) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            hang_ups: Mutex::new(0),
            hung_up: Condvar::new(),
            open: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        shared.open.lock().unwrap().push(clone);
                    }
                    let worker = {
                        let shared = shared.clone();
                        std::thread::spawn(move || serve(&shared, stream))
                    };
                    shared.threads.lock().unwrap().push(worker);
                }
            })
        };
        Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked `accept`; it sees the flag and returns.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn serve(shared: &Shared, stream: TcpStream) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let earlier = {
        let mut requests = shared.requests.lock().unwrap();
        let earlier = requests
            .iter()
            .filter(|r| r.path() == request.path())
            .count();
        requests.push(request.clone());
        earlier
    };
    let seen = Seen { earlier, shared };
    match (shared.handler)(&request, &seen) {
        Reply::Hang => {
            // Reads until the client closes its end (or the server shuts the stream down).
            let mut sink = [0u8; 256];
            let mut stream = &stream;
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            if !shared.stop.load(Ordering::SeqCst) {
                *shared.hang_ups.lock().unwrap() += 1;
                shared.hung_up.notify_all();
            }
        }
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (name, value) in &headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            let mut stream = &stream;
            let _ = stream.write_all(out.as_bytes());
            if request.method != "HEAD" {
                let _ = stream.write_all(&body);
            }
            let _ = stream.flush();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
