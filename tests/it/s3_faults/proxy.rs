//! The fault-injecting HTTP proxy: plain std::net threads on 127.0.0.1 forwarding to the
//! test server, one request per connection (`Connection: close` both ways), injecting a fault
//! into every n-th request or answering 501 to conditional writes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `503 SlowDown` with an S3 XML error body.
    SlowDown,
    /// Close the connection after reading only the request head.
    DropRequest,
    /// Forward the request, then send only half of the response and close.
    DropResponse,
}

#[derive(Default)]
struct State {
    /// Every `every`-th request (counting from 1) gets the next fault of `rotation`; 0: none.
    every: AtomicU64,
    rotation: Mutex<Vec<Fault>>,
    /// Stop injecting after this many faults (0: no limit).
    max_faults: AtomicU64,
    /// Answer 501 to any request carrying `If-None-Match`.
    reject_conditional: AtomicBool,
    /// Answer 404 to every HEAD (a stale view: objects seem missing until written).
    hide_heads: AtomicBool,
    /// Set on drop; the accept loop ends at the next connection.
    stopped: AtomicBool,
    requests: AtomicU64,
    faults: AtomicU64,
    conditional_seen: AtomicU64,
}

pub struct FaultProxy {
    pub endpoint: String,
    addr: SocketAddr,
    state: Arc<State>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoint = format!("http://{addr}");
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if st.stopped.load(SeqCst) {
                    break;
                }
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(client, upstream, &st);
                });
            }
        });
        FaultProxy {
            endpoint,
            addr,
            state,
        }
    }

    /// Inject `rotation` (in turn) into every `every`-th request from now on; 0 turns it off.
    pub fn set_faults(&self, every: u64, rotation: &[Fault]) {
        self.set_faults_limited(every, rotation, 0);
    }

    /// Like `set_faults`, but only the first `max` faults from now on are injected.
    pub fn set_faults_limited(&self, every: u64, rotation: &[Fault], max: u64) {
        *self.state.rotation.lock().unwrap() = rotation.to_vec();
        self.state.requests.store(0, SeqCst);
        self.state.max_faults.store(
            max + self.state.faults.load(SeqCst) * u64::from(max > 0),
            SeqCst,
        );
        self.state.every.store(every, SeqCst);
    }

    pub fn reject_conditional(&self, on: bool) {
        self.state.reject_conditional.store(on, SeqCst);
    }

    pub fn hide_heads(&self, on: bool) {
        self.state.hide_heads.store(on, SeqCst);
    }

    pub fn faults(&self) -> u64 {
        self.state.faults.load(SeqCst)
    }

    pub fn conditional_seen(&self) -> u64 {
        self.state.conditional_seen.load(SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop so it sees the flag
    }
}

fn pick(st: &State) -> Option<Fault> {
    let n = st.requests.fetch_add(1, SeqCst) + 1;
    let every = st.every.load(SeqCst);
    if every == 0 || !n.is_multiple_of(every) {
        return None;
    }
    let max = st.max_faults.load(SeqCst);
    if max > 0 && st.faults.load(SeqCst) >= max {
        return None;
    }
    let rotation = st.rotation.lock().unwrap();
    let fault = *rotation.get(((n / every - 1) % rotation.len().max(1) as u64) as usize)?;
    st.faults.fetch_add(1, SeqCst);
    Some(fault)
}

/// Read up to the end of the HTTP head; returns (head, body bytes already read).
fn read_head(s: &mut TcpStream) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while buf.len() < 1 << 20 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Err(io::ErrorKind::InvalidData.into())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The head with any `Connection` header replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut out: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    out.push("Connection: close");
    out.join("\r\n") + "\r\n\r\n"
}

fn error_response(status: &str, code: &str, message: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>fault-proxy</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn handle(mut client: TcpStream, upstream: SocketAddr, st: &State) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, rest) = read_head(&mut client)?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let body_len: u64 = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let remaining = body_len.saturating_sub(rest.len() as u64);
    let conditional = header(&head, "if-none-match").is_some();
    if conditional {
        st.conditional_seen.fetch_add(1, SeqCst);
    }
    let drain = |client: &mut TcpStream| io::copy(&mut client.take(remaining), &mut io::sink());
    if head.starts_with("HEAD ") && st.hide_heads.load(SeqCst) {
        client.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return client.shutdown(Shutdown::Both);
    }
    if conditional && st.reject_conditional.load(SeqCst) {
        drain(&mut client)?;
        let msg = "A header you provided implies functionality that is not implemented";
        client
            .write_all(error_response("501 Not Implemented", "NotImplemented", msg).as_bytes())?;
        return client.shutdown(Shutdown::Both);
    }
    let fault = pick(st);
    match fault {
        Some(Fault::SlowDown) => {
            drain(&mut client)?;
            let msg = "Please reduce your request rate.";
            client.write_all(error_response("503 Slow Down", "SlowDown", msg).as_bytes())?;
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::DropRequest) => return client.shutdown(Shutdown::Both),
        Some(Fault::DropResponse) | None => {}
    }
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    up.write_all(closing(&head).as_bytes())?;
    up.write_all(&rest)?;
    io::copy(&mut (&client).take(remaining), &mut up)?;
    // The server closes after its answer (Connection: close), so read to the end.
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    let (resp_head, resp_body) = resp.split_at(split);
    let mut out = closing(&String::from_utf8_lossy(resp_head)).into_bytes();
    out.extend_from_slice(resp_body);
    if fault == Some(Fault::DropResponse) {
        out.truncate(out.len() / 2);
    }
    client.write_all(&out)?;
    client.shutdown(Shutdown::Both)
}
