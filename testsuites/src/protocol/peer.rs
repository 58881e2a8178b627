//! A raw client of the IPC protocol: starts a driver executable the way the client does, and
//! sends and receives frames one by one, so that a case can do what the real client never does.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use storagedriver_ipc::frame::{self, Frame, FrameDecoder, FrameType, HEADER_LEN};
use storagedriver_ipc::{PARAMETERS_ENV, PROTOCOL_VERSION, SOCKET_ENV};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};

/// How long a case waits for the server's next frame before it calls the server hung.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a case watches for frames that must not come (a stream beyond its window).
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// One running server and the raw connection to it.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stream: UnixStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    stderr: Arc<Mutex<String>>,
    /// The driver's name, as the case expects it (`registry-storage-<name>`).
    pub name: String,
    /// The version the server announced in `WELCOME`, once the handshake is done.
    pub version: Option<String>,
    _socket_dir: tempfile::TempDir,
}

/// What a server sent: a frame, the end of the connection, or nothing within
/// [`ANSWER_TIMEOUT`].
#[derive(Debug)]
pub enum Received {
    /// A frame.
    Frame(Frame),
    /// End of file (or a reset connection): the server closed it.
    Closed,
}

impl Peer {
    /// Starts `executable` with `parameters` (in the environment, as the client passes them)
    /// and waits for its connection; no frame is exchanged yet.
    ///
    /// # Panics
    ///
    /// When the executable cannot start or does not connect within [`ANSWER_TIMEOUT`], with its
    /// stderr.
    pub async fn start(name: &str, executable: &Path, parameters: &Value) -> Peer {
        let socket_dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let socket = socket_dir.path().join("s");
        let listener = match UnixListener::bind(&socket) {
            Ok(listener) => listener,
            Err(e) => panic!("cannot listen on {}: {e}", socket.display()),
        };
        let mut child = match Command::new(executable)
            .env(SOCKET_ENV, &socket)
            .env(PARAMETERS_ENV, parameters.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot start {}: {e}", executable.display()),
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut chunk = vec![0; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    }
                }
            });
        }
        let stream = match tokio::time::timeout(ANSWER_TIMEOUT, listener.accept()).await {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => panic!("{name}: accepting the server's connection failed: {e}"),
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                panic!(
                    "{name}: the server did not connect within {ANSWER_TIMEOUT:?} (exit status: \
                     {status:?}); stderr:\n{}",
                    stderr.lock().map(|s| s.clone()).unwrap_or_default()
                )
            }
        };
        Peer {
            child,
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(),
            stderr,
            name: name.to_owned(),
            version: None,
            _socket_dir: socket_dir,
        }
    }

    /// Starts the server and does the handshake as a client of this crate's protocol version;
    /// checks `WELCOME` (see [`Peer::hello`]).
    pub async fn connected(name: &str, executable: &Path, parameters: &Value) -> Peer {
        let mut peer = Peer::start(name, executable, parameters).await;
        peer.hello().await;
        peer
    }

    /// The minor version whose rules apply on this connection: the lower of the two
    /// announced (the client's is this crate's [`PROTOCOL_VERSION`]).
    pub fn minor(&self) -> u32 {
        let server = self.version.as_deref().and_then(minor_of).unwrap_or(0);
        minor_of(PROTOCOL_VERSION).map_or(server, |client| client.min(server))
    }

    /// The initial window of a stream the client sends (`put_content`, writer handles):
    /// 64 KiB from protocol 1.1 on, 4 MiB in 1.0.
    pub fn client_window(&self) -> u64 {
        if self.minor() >= 1 {
            64 * 1024
        } else {
            4 << 20
        }
    }

    /// The initial window of a stream the server sends (`get_content`, `reader`): none from
    /// protocol 1.1 on (the client opens it with `CREDIT`), 4 MiB in 1.0.
    pub fn server_window(&self) -> u64 {
        if self.minor() >= 1 { 0 } else { 4 << 20 }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends `HELLO` as a client of this crate's protocol version and returns `WELCOME`'s
    /// JSON, after checking that it names the expected driver and a compatible version.
    pub async fn hello(&mut self) -> Value {
        let welcome = self.hello_as(PROTOCOL_VERSION).await;
        let driver = welcome["driver"].as_str().unwrap_or_default();
        assert_eq!(
            driver, self.name,
            "WELCOME names the driver `{driver}`; the executable registry-storage-{} must \
             announce `{}`",
            self.name, self.name
        );
        welcome
    }

    /// Sends `HELLO` with `version` and returns the `WELCOME` JSON.
    pub async fn hello_as(&mut self, version: &str) -> Value {
        let hello = json!({"protocol": "registry-storage-ipc", "version": version});
        self.send_json(FrameType::Hello, 0, &hello).await;
        let welcome = self.expect_json(FrameType::Welcome, 0).await;
        let announced = welcome["version"].as_str().map(str::to_owned);
        assert!(
            announced.as_deref().is_some_and(|v| v.starts_with("1.")),
            "{}: WELCOME must carry a version of major 1, got {welcome}",
            self.name
        );
        self.version = announced;
        welcome
    }

    /// Writes raw bytes to the connection.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes).await {
            panic!(
                "{}: writing to the server failed: {e}{}",
                self.name,
                self.tail()
            );
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, kind: FrameType, id: u64, payload: impl Into<Bytes>) {
        let mut out = BytesMut::new();
        if let Err(e) = frame::encode(&Frame::new(kind, id, payload), &mut out) {
            panic!("the case built a frame the codec refuses: {e}");
        }
        self.send_raw(&out).await;
    }

    /// Sends a frame whose payload is `value` as JSON.
    pub async fn send_json(&mut self, kind: FrameType, id: u64, value: &Value) {
        self.send(kind, id, value.to_string().into_bytes()).await;
    }

    /// Sends a request.
    pub async fn request(&mut self, id: u64, request: &Value) {
        self.send_json(FrameType::Request, id, request).await;
    }

    /// Sends `CREDIT` of `bytes` on stream `id`.
    pub async fn credit(&mut self, id: u64, bytes: u32) {
        self.send(FrameType::Credit, id, bytes.to_le_bytes().to_vec())
            .await;
    }

    /// Sends a frame header with any `length` and `kind` byte, and `payload` after it (which
    /// may be shorter than the header says).
    pub async fn send_header(&mut self, length: u32, kind: u8, id: u64, payload: &[u8]) {
        let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
        out.put_u32_le(length);
        out.put_u8(kind);
        out.put_u64_le(id);
        out.put_slice(payload);
        self.send_raw(&out).await;
    }

    /// The next frame or the end of the connection, within `timeout`; `None` when nothing
    /// came.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, async {
            loop {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(frame)) => return Received::Frame(frame),
                    Ok(None) => {}
                    Err(e) => panic!(
                        "{}: the server sent a frame that breaks the framing: {e}{}",
                        self.name,
                        self.tail()
                    ),
                }
                self.buf.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return Received::Closed,
                    Ok(_) => {}
                }
            }
        })
        .await
        .ok()
    }

    /// The next frame; `PONG` frames are passed over.
    ///
    /// # Panics
    ///
    /// When nothing comes within [`ANSWER_TIMEOUT`] (the server hangs) or the connection
    /// closes.
    pub async fn next(&mut self) -> Frame {
        loop {
            match self.next_within(ANSWER_TIMEOUT).await {
                Some(Received::Frame(f)) if f.kind == FrameType::Pong => {}
                Some(Received::Frame(f)) => return f,
                Some(Received::Closed) => panic!(
                    "{}: the server closed the connection{}",
                    self.name,
                    self.tail()
                ),
                None => panic!(
                    "{}: no frame from the server within {ANSWER_TIMEOUT:?}: it hangs{}",
                    self.name,
                    self.tail()
                ),
            }
        }
    }

    /// The next frame, which must be of `kind` on `id`; returns its payload.
    pub async fn expect(&mut self, kind: FrameType, id: u64) -> Bytes {
        let f = self.next().await;
        assert!(
            f.kind == kind && f.id == id,
            "{}: expected {} on id {id}, got {} on id {} ({} bytes: {})",
            self.name,
            kind.name(),
            f.kind.name(),
            f.id,
            f.payload.len(),
            String::from_utf8_lossy(&f.payload[..f.payload.len().min(200)])
        );
        f.payload
    }

    /// The next frame, which must be `kind` on `id` with a JSON payload.
    pub async fn expect_json(&mut self, kind: FrameType, id: u64) -> Value {
        let payload = self.expect(kind, id).await;
        parse(&self.name, &payload)
    }

    /// The response to request `id`, its `RESPONSE_PART` pieces joined; other frames in
    /// between are handed to `other`.
    pub async fn response_with(&mut self, id: u64, mut other: impl FnMut(Frame)) -> Value {
        let mut joined = Vec::new();
        loop {
            let f = self.next().await;
            match f.kind {
                FrameType::ResponsePart if f.id == id => joined.extend_from_slice(&f.payload),
                FrameType::Response if f.id == id => {
                    joined.extend_from_slice(&f.payload);
                    return parse(&self.name, &joined);
                }
                _ => other(f),
            }
        }
    }

    /// The response to request `id`; `CREDIT` frames before it are passed over, any other
    /// frame fails the case.
    pub async fn response(&mut self, id: u64) -> Value {
        let name = self.name.clone();
        self.response_with(id, |f| {
            if f.kind == FrameType::Credit {
                return;
            }
            panic!(
                "{name}: expected the response to request {id}, got {} on id {}",
                f.kind.name(),
                f.id
            )
        })
        .await
    }

    /// The `ok` value of the response to request `id`.
    pub async fn ok(&mut self, id: u64) -> Value {
        let response = self.response(id).await;
        match response.get("ok") {
            Some(value) => value.clone(),
            None => panic!("{}: request {id} should succeed, got {response}", self.name),
        }
    }

    /// Waits for the next `RESPONSE` (of any id, `CREDIT` frames passed over), which must be
    /// `ok`; returns its id.
    pub async fn ok_any(&mut self) -> u64 {
        loop {
            let f = self.next().await;
            match f.kind {
                FrameType::Credit => {}
                FrameType::Response => {
                    let response = parse(&self.name, &f.payload);
                    assert!(
                        response.get("ok").is_some(),
                        "{}: request {} should succeed, got {response}",
                        self.name,
                        f.id
                    );
                    return f.id;
                }
                _ => panic!(
                    "{}: expected a response, got {} on id {}",
                    self.name,
                    f.kind.name(),
                    f.id
                ),
            }
        }
    }

    /// The `error` object of the response to request `id`, after checking that it names the
    /// driver.
    pub async fn error(&mut self, id: u64) -> Value {
        let response = self.response(id).await;
        self.error_of(id, &response)
    }

    /// The `error` object of `response`, after checking that it names the driver.
    pub fn error_of(&self, id: u64, response: &Value) -> Value {
        let Some(error) = response.get("error") else {
            panic!("{}: request {id} should fail, got {response}", self.name);
        };
        assert_eq!(
            error["driver"].as_str(),
            Some(self.name.as_str()),
            "{}: every error's `driver` is the name WELCOME announced, got {error}",
            self.name
        );
        assert!(
            error["kind"].is_string(),
            "{}: an error has a `kind`, got {error}",
            self.name
        );
        error.clone()
    }

    /// Reads a stream on `id` to its end, granting credit as it goes (everything it reads);
    /// returns the bytes. An `initial` grant opens a stream the server sends (protocol 1.1:
    /// it starts with no window).
    pub async fn read_stream(&mut self, id: u64, initial: u32) -> Vec<u8> {
        if initial > 0 {
            self.credit(id, initial).await;
        }
        let mut content = Vec::new();
        loop {
            let f = self.next().await;
            match f.kind {
                FrameType::Data if f.id == id => {
                    content.extend_from_slice(&f.payload);
                    let granted = u32::try_from(f.payload.len()).unwrap_or(u32::MAX);
                    self.credit(id, granted).await;
                }
                FrameType::End if f.id == id => return content,
                FrameType::Reset if f.id == id => panic!(
                    "{}: the stream on id {id} was reset: {}",
                    self.name,
                    String::from_utf8_lossy(&f.payload)
                ),
                _ => panic!(
                    "{}: expected the stream on id {id}, got {} on id {}",
                    self.name,
                    f.kind.name(),
                    f.id
                ),
            }
        }
    }

    /// Sends `content` as a stream on `id` in frames of at most 64 KiB, within the window
    /// the server grants (starting at `window` bytes), then `END`. Returns early with the
    /// server's response if one comes for `id` while it waits for credit (then without
    /// `END`).
    pub async fn send_stream(&mut self, id: u64, content: &[u8], window: u64) -> Option<Value> {
        let early = self.send_stream_no_end(id, content, window).await;
        if early.is_none() {
            self.send(FrameType::End, id, Vec::new()).await;
        }
        early
    }

    /// [`Peer::send_stream`] without the `END` (a writer handle's stream goes on).
    pub async fn send_stream_no_end(
        &mut self,
        id: u64,
        content: &[u8],
        window: u64,
    ) -> Option<Value> {
        let mut window = window;
        for chunk in content.chunks(64 * 1024) {
            while window < chunk.len() as u64 {
                let f = self.next().await;
                match f.kind {
                    FrameType::Credit if f.id == id => {
                        window += u64::from(credit_value(&self.name, &f.payload));
                    }
                    FrameType::Response if f.id == id => {
                        return Some(parse(&self.name, &f.payload));
                    }
                    FrameType::Credit => {}
                    _ => panic!(
                        "{}: while sending on id {id}, got {} on id {}",
                        self.name,
                        f.kind.name(),
                        f.id
                    ),
                }
            }
            self.send(FrameType::Data, id, chunk.to_vec()).await;
            window -= chunk.len() as u64;
        }
        None
    }

    /// Stores `content` at `path` with `put_content` on request `id` (protocol 1.1 windows).
    pub async fn put(&mut self, id: u64, path: &str, content: &[u8]) {
        self.request(id, &json!({"op": "put_content", "path": path}))
            .await;
        let window = self.client_window();
        if let Some(early) = self.send_stream(id, content, window).await {
            panic!("{}: put_content {path} failed: {early}", self.name);
        }
        loop {
            let f = self.next().await;
            match f.kind {
                FrameType::Credit => {}
                FrameType::Response if f.id == id => {
                    let response = parse(&self.name, &f.payload);
                    assert!(
                        response.get("ok").is_some(),
                        "{}: put_content {path} failed: {response}",
                        self.name
                    );
                    return;
                }
                _ => panic!(
                    "{}: expected put_content's response, got {} on id {}",
                    self.name,
                    f.kind.name(),
                    f.id
                ),
            }
        }
    }

    /// Sends `PING` on `id` and waits for its `PONG`, passing over other frames.
    pub async fn ping(&mut self, id: u64) {
        self.send(FrameType::Ping, id, Vec::new()).await;
        loop {
            match self.next_within(ANSWER_TIMEOUT).await {
                Some(Received::Frame(f)) if f.kind == FrameType::Pong && f.id == id => return,
                Some(Received::Frame(_)) => {}
                Some(Received::Closed) => panic!(
                    "{}: the server closed the connection instead of answering PING{}",
                    self.name,
                    self.tail()
                ),
                None => panic!(
                    "{}: no PONG within {ANSWER_TIMEOUT:?}: the server hangs{}",
                    self.name,
                    self.tail()
                ),
            }
        }
    }

    /// Reads until the server's `FATAL` and the end of the connection, or the end of the
    /// connection alone (a server may fail to send `FATAL` when its peer broke the framing);
    /// returns `FATAL`'s message, if one came. Frames before it are passed over.
    ///
    /// # Panics
    ///
    /// When the server keeps the connection open for [`ANSWER_TIMEOUT`].
    pub async fn fatal(&mut self) -> Option<String> {
        let mut message = None;
        loop {
            match self.next_within(ANSWER_TIMEOUT).await {
                Some(Received::Frame(f)) if f.kind == FrameType::Fatal => {
                    let value = parse(&self.name, &f.payload);
                    let text = value["message"].as_str().map(str::to_owned);
                    assert!(
                        text.as_deref().is_some_and(|t| !t.is_empty()),
                        "{}: FATAL carries {{\"message\": TEXT}}, got {value}",
                        self.name
                    );
                    message = text;
                }
                Some(Received::Frame(_)) => {}
                Some(Received::Closed) => return message,
                None => panic!(
                    "{}: after a protocol error the server must send FATAL and close the \
                     connection; it is still open after {ANSWER_TIMEOUT:?}{}",
                    self.name,
                    self.tail()
                ),
            }
        }
    }

    /// Nothing on `id` may come within [`QUIET_PERIOD`]: returns how many bytes of `DATA`
    /// did come on it (frames for other ids are passed over).
    pub async fn data_within_quiet_period(&mut self, id: u64) -> usize {
        let deadline = tokio::time::Instant::now() + QUIET_PERIOD;
        let mut bytes = 0;
        while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
            match self.next_within(left).await {
                Some(Received::Frame(f)) if f.kind == FrameType::Data && f.id == id => {
                    bytes += f.payload.len();
                }
                Some(Received::Frame(_)) => {}
                Some(Received::Closed) => {
                    panic!(
                        "{}: the server closed the connection{}",
                        self.name,
                        self.tail()
                    )
                }
                None => break,
            }
        }
        bytes
    }

    /// Closes the connection and waits for the server to exit; returns its exit code
    /// (`None` when a signal ended it).
    ///
    /// # Panics
    ///
    /// When it has not exited within [`ANSWER_TIMEOUT`] after the connection closed.
    pub async fn close(mut self) -> Option<i32> {
        let _ = self.stream.shutdown().await;
        self.wait_exit().await
    }

    /// Waits for the server to exit on its own (after `FATAL`, say); returns its exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            Ok(Err(e)) => panic!("{}: waiting for the server failed: {e}", self.name),
            Err(_) => panic!(
                "{}: the server has not exited {ANSWER_TIMEOUT:?} after its connection closed{}",
                self.name,
                self.tail()
            ),
        }
    }

    fn tail(&self) -> String {
        let stderr = self.stderr();
        if stderr.trim().is_empty() {
            String::new()
        } else {
            let lines: Vec<&str> = stderr.lines().collect();
            let start = lines.len().saturating_sub(10);
            format!("; its stderr ends:\n{}", lines[start..].join("\n"))
        }
    }
}

/// The minor of a `MAJOR.MINOR` version.
fn minor_of(version: &str) -> Option<u32> {
    version.split_once('.')?.1.parse().ok()
}

/// Parses a JSON payload, or fails the case naming the driver.
pub(super) fn parse(name: &str, payload: &[u8]) -> Value {
    match serde_json::from_slice(payload) {
        Ok(value) => value,
        Err(e) => panic!(
            "{name}: the server sent JSON that does not parse ({e}): {}",
            String::from_utf8_lossy(&payload[..payload.len().min(200)])
        ),
    }
}

/// The value of a `CREDIT` payload (4 bytes, little-endian).
pub(super) fn credit_value(name: &str, payload: &[u8]) -> u32 {
    match <[u8; 4]>::try_from(payload) {
        Ok(bytes) => u32::from_le_bytes(bytes),
        Err(_) => panic!("{name}: a CREDIT payload is 4 bytes, got {}", payload.len()),
    }
}
