#!/usr/bin/env python3
"""A self-contained test client for registry-storage-pydir (standard library only).

It plays the registry's side of storagedriver-ipc/PROTOCOL.md: it creates the listening Unix
socket, sets REGISTRY_STORAGE_IPC_SOCKET, starts the driver, does the handshake and exercises
every operation, the streams and their flow control, walks, the error kinds and the protocol
errors. Run it from anywhere:

    python3 examples/python-driver/tests/test_pydir.py [-k SUBSTRING] [--big-mib N] [--slow]

It exits 0 when every test passed.
"""

import argparse
import collections
import hashlib
import json
import os
import queue
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(os.path.dirname(HERE), "registry-storage-pydir")

HELLO, WELCOME = 0x01, 0x02
REQUEST, RESPONSE, RESPONSE_PART = 0x10, 0x11, 0x12
DATA, END, CREDIT, RESET = 0x20, 0x21, 0x22, 0x23
WALK_ENTRY, WALK_CONTROL = 0x30, 0x31
PING, PONG = 0x40, 0x41
FATAL = 0x7F
HEADER = struct.Struct("<IBQ")
MIB = 1 << 20
WINDOW = 4 * MIB

BIG_MIB = 64


class DriverError(Exception):
    def __init__(self, obj):
        super().__init__(json.dumps(obj))
        self.obj = obj
        self.kind = obj.get("kind")


class Closed(Exception):
    pass


def pack(ftype, fid, payload=b""):
    return HEADER.pack(9 + len(payload), ftype, fid) + payload


def jdump(value):
    return json.dumps(value, separators=(",", ":")).encode()


class Driver:
    """A running driver process and the listening side of its socket."""

    def __init__(self, root, params=None, handshake=True, version="1.0", env_params=None):
        self.tmp = tempfile.mkdtemp(prefix="pydir-ipc-")
        os.chmod(self.tmp, 0o700)
        self.sock_path = os.path.join(self.tmp, "sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock_path)
        self.listener.listen(1)
        self.stderr_path = os.path.join(self.tmp, "stderr")
        env = dict(os.environ, REGISTRY_STORAGE_IPC_SOCKET=self.sock_path)
        if env_params is not None:
            env["REGISTRY_STORAGE_IPC_PARAMETERS"] = json.dumps(env_params)
        if params is None:
            params = {"rootdirectory": root}
        args = [DRIVER] if params is ... else [DRIVER, params if isinstance(params, str)
                                                   else json.dumps(params)]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        self.client = None
        if handshake is not None:
            self.listener.settimeout(10)
            conn, _ = self.listener.accept()
            self.client = Client(conn)
            if handshake:
                self.welcome = self.client.handshake(version)

    def accepts(self, timeout):
        self.listener.settimeout(timeout)
        try:
            conn, _ = self.listener.accept()
            conn.close()
            return True
        except socket.timeout:
            return False

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait(self, timeout=10):
        return self.proc.wait(timeout)

    def close(self):
        """Closes the connection (EOF) and returns the driver's exit status."""
        if self.client:
            self.client.close()
        try:
            status = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        self.listener.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return status


class Client:
    """The client side of one connection."""

    def __init__(self, sock):
        self.sock = sock
        self.send_lock = threading.Lock()
        self.lock = threading.Lock()
        self.queues = {}  # id -> Queue of (type, payload)
        self.windows = {}  # id -> bytes we may still send
        self.window_cv = threading.Condition(self.lock)
        self.pongs = queue.Queue()
        self.fatal = queue.Queue()
        self.closed = False
        self.next_id = 1
        self.frames_seen = 0
        self.reader_thread = threading.Thread(target=self._read, daemon=True)
        self.started = False

    # -- plumbing --

    def send(self, ftype, fid, payload=b""):
        with self.send_lock:
            self.sock.sendall(pack(ftype, fid, payload))

    def send_raw(self, data):
        with self.send_lock:
            self.sock.sendall(data)

    def new_id(self):
        with self.lock:
            rid = self.next_id
            self.next_id += 1
            self.windows[rid] = WINDOW
            return rid

    def q(self, fid):
        with self.lock:
            qq = self.queues.get(fid)
            if qq is None:
                qq = self.queues[fid] = queue.Queue()
            return qq

    def _recv_exact(self, f, n):
        data = f.read(n)
        if len(data) < n:
            raise Closed()
        return data

    def _read(self):
        f = self.sock.makefile("rb", buffering=MIB)
        try:
            while True:
                length, ftype, fid = HEADER.unpack(self._recv_exact(f, 13))
                assert 9 <= length <= 9 + MIB, length
                payload = self._recv_exact(f, length - 9) if length > 9 else b""
                self.frames_seen += 1
                if ftype == CREDIT:
                    (n,) = struct.unpack("<I", payload)
                    with self.window_cv:
                        self.windows[fid] = self.windows.get(fid, 0) + n
                        self.window_cv.notify_all()
                elif ftype == PONG:
                    self.pongs.put(fid)
                elif ftype == FATAL:
                    self.fatal.put(json.loads(payload))
                elif ftype == DATA:
                    assert 1 <= len(payload) <= MIB
                    self.q(fid).put((ftype, payload))
                else:
                    self.q(fid).put((ftype, payload))
        except (Closed, OSError, ValueError):
            pass
        finally:
            with self.window_cv:
                self.closed = True
                self.window_cv.notify_all()
            with self.lock:
                qs = list(self.queues.values())
            for qq in qs:
                qq.put((None, b""))

    def start(self):
        if not self.started:
            self.started = True
            self.reader_thread.start()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def handshake(self, version="1.0"):
        self.start()
        self.send(HELLO, 0, jdump({"protocol": "registry-storage-ipc", "version": version}))
        ftype, payload = self.q(0).get(timeout=10)
        if ftype != WELCOME:
            raise AssertionError(f"expected WELCOME, got {ftype}")
        return json.loads(payload)

    def next_frame(self, fid, timeout=30):
        ftype, payload = self.q(fid).get(timeout=timeout)
        if ftype is None:
            raise Closed()
        return ftype, payload

    def raw_response(self, rid, timeout=30, first=None):
        """The whole JSON of a response: the RESPONSE_PART pieces and the RESPONSE, joined.
        Returns (bytes, the sizes of the RESPONSE_PART pieces)."""
        parts = []
        while True:
            ftype, payload = first if first else self.next_frame(rid, timeout)
            first = None
            if ftype == RESPONSE_PART:
                assert len(payload) <= MIB, len(payload)
                parts.append(payload)
                continue
            assert ftype == RESPONSE, f"expected RESPONSE for {rid}, got 0x{ftype:02x}"
            whole = b"".join(parts) + payload
            assert len(whole) <= 64 * MIB, len(whole)
            return whole, [len(part) for part in parts]

    def response(self, rid, timeout=30):
        obj = json.loads(self.raw_response(rid, timeout)[0])
        if "error" in obj:
            err = obj["error"]
            assert err.get("driver") == "pydir", err
            raise DriverError(err)
        return obj["ok"]

    def request(self, op, **fields):
        rid = self.new_id()
        self.send(REQUEST, rid, jdump({"op": op, **fields}))
        return rid

    def call(self, op, timeout=30, **fields):
        return self.response(self.request(op, **fields), timeout)

    # -- streams we receive --

    def recv_stream(self, sid, sink=None, grant=True):
        """Reads DATA until END; grants CREDIT per MiB consumed. Returns bytes (or the count
        when sink is given: sink(chunk) is called for each)."""
        parts = []
        total = 0
        pending = 0
        while True:
            ftype, payload = self.next_frame(sid)
            if ftype == DATA:
                total += len(payload)
                if sink:
                    sink(payload)
                else:
                    parts.append(payload)
                pending += len(payload)
                if grant and pending >= MIB:
                    self.send(CREDIT, sid, struct.pack("<I", pending))
                    pending = 0
            elif ftype == END:
                return total if sink else b"".join(parts)
            elif ftype == RESET:
                raise DriverError(json.loads(payload) if payload else {"kind": "reset"})
            else:
                raise AssertionError(f"unexpected frame 0x{ftype:02x} on stream {sid}")

    def get_content(self, path, sink=None):
        rid = self.request("get_content", path=path)
        ok = self.response(rid)
        data = self.recv_stream(rid, sink)
        n = data if sink else len(data)
        assert n == ok["size"], (n, ok)
        return data

    def reader(self, path, offset, sink=None):
        rid = self.request("reader", path=path, offset=offset)
        assert self.response(rid) is None
        return self.recv_stream(rid, sink)

    # -- streams we send --

    def send_stream(self, sid, chunks, stop_on_response=False):
        """Sends chunks as DATA frames within the window; False if the server answered
        meanwhile (then we stop and send END, as a client must)."""
        answers = self.q(sid)
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                with self.window_cv:
                    while self.windows[sid] <= 0 and not self.closed:
                        if stop_on_response and not answers.empty():
                            break
                        self.window_cv.wait(0.05)
                    if self.closed:
                        raise Closed()
                    if stop_on_response and not answers.empty():
                        self.send(END, sid)
                        return False
                    n = min(len(view), MIB, self.windows[sid])
                    self.windows[sid] -= n
                self.send_raw(pack(DATA, sid, bytes(view[:n])))
                view = view[n:]
        return True

    def put_content(self, path, data=None, chunks=None):
        rid = self.request("put_content", path=path)
        if chunks is None:
            chunks = [data[i:i + MIB] for i in range(0, len(data), MIB)] if data else []
        if self.send_stream(rid, chunks, stop_on_response=True):
            self.send(END, rid)
        return self.response(rid)

    def writer(self, path, append=False):
        rid = self.request("writer", path=path, append=append)
        ok = self.response(rid)
        return rid, ok["size"]

    def write(self, handle, data, frame=MIB):
        chunks = [data[i:i + frame] for i in range(0, len(data), frame)]
        self.send_stream(handle, chunks)

    def walk(self, path, start_after=None, decide=None):
        """Walks; decide(info) returns 0, 1 or 2 (default 0). Returns the infos seen."""
        rid = self.request("walk", path=path, start_after=start_after)
        seen = []
        while True:
            ftype, payload = self.next_frame(rid)
            if ftype == WALK_ENTRY:
                info = json.loads(payload)
                seen.append(info)
                control = decide(info) if decide else 0
                self.send(WALK_CONTROL, rid, bytes([control]))
            elif ftype in (RESPONSE, RESPONSE_PART):
                obj = json.loads(self.raw_response(rid, first=(ftype, payload))[0])
                if "error" in obj:
                    raise DriverError(obj["error"])
                assert obj["ok"] is None
                return seen
            else:
                raise AssertionError(f"unexpected frame 0x{ftype:02x} in walk")

    def ping(self, fid=777, timeout=5):
        self.send(PING, fid)
        got = self.pongs.get(timeout=timeout)
        assert got == fid, got


# ---------------------------------------------------------------------------------------------
# Test harness.

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def expect_error(kind, fn, *args, **kwargs):
    try:
        value = fn(*args, **kwargs)
    except DriverError as e:
        assert e.kind == kind, f"expected {kind}, got {e.obj}"
        return e.obj
    raise AssertionError(f"expected a {kind} error, got {value!r}")


class Env:
    """A fresh root and a driver on it, for one test."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="pydir-root-")
        self.drivers = []

    def start(self, **kw):
        d = Driver(self.root, **kw)
        self.drivers.append(d)
        return d

    def cleanup(self):
        statuses = [d.close() for d in self.drivers]
        shutil.rmtree(self.root, ignore_errors=True)
        return statuses


def slow(fn):
    """Marks a test that takes tens of seconds: it runs only with --slow."""
    fn.slow = True
    return fn


def with_driver(fn):
    """Runs fn(client, env) against a fresh driver; checks the driver exits 0 at EOF."""

    def run():
        env = Env()
        d = env.start()
        try:
            fn(d.client, env)
        except BaseException:
            sys.stderr.write("--- driver stderr ---\n" + d.stderr() + "---\n")
            raise
        finally:
            statuses = env.cleanup()
        assert all(s == 0 for s in statuses), f"driver exit statuses {statuses}"

    run.__name__ = fn.__name__
    return test(run)


# ---------------------------------------------------------------------------------------------
# Start-up, handshake and protocol errors.


@test
def parameters_are_checked_before_connecting():
    root = tempfile.mkdtemp(prefix="pydir-root-")
    try:
        cases = [
            (..., "rootdirectory"),
            ({}, "rootdirectory"),
            ({"rootdirectory": root, "bogus": "1"}, "bogus"),
            ({"rootdirectory": 5}, "rootdirectory"),
            ("not json", "JSON"),
        ]
        for params, needle in cases:
            d = Driver(root, params=params, handshake=None)
            status = d.wait()
            assert status == 2, (params, status)
            assert needle in d.stderr(), (params, d.stderr())
            assert not d.accepts(0.2), f"{params}: connected although invalid"
            d.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def parameters_may_come_from_the_environment():
    root = tempfile.mkdtemp(prefix="pydir-root-")
    try:
        d = Driver(root, params=..., env_params={"rootdirectory": root})
        assert d.welcome["driver"] == "pydir"
        d.close()
        d = Driver(root, env_params={"rootdirectory": root}, handshake=None)
        assert d.wait() == 2
        assert "give them once" in d.stderr(), d.stderr()
        d.close()
        d = Driver(root, params=..., env_params={"bogus": "1"}, handshake=None)
        assert d.wait() == 2
        assert "bogus" in d.stderr(), d.stderr()
        d.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def root_directory_is_created():
    base = tempfile.mkdtemp(prefix="pydir-root-")
    root = os.path.join(base, "x", "y")
    try:
        d = Driver(root)
        assert os.path.isdir(root)
        assert d.welcome == {
            "version": "1.2",
            "driver": "pydir",
            "capabilities": {"url_for": False, "append_to_committed": False,
                             "persistent": True, "detects_file_dir_conflicts": True},
        }, d.welcome
        assert d.close() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


@test
def newer_minor_version_is_accepted():
    env = Env()
    try:
        d = env.start(version="1.7")
        assert d.welcome["version"] == "1.2"
        d.client.ping()
    finally:
        assert env.cleanup() == [0]


@test
def other_major_version_is_fatal():
    env = Env()
    try:
        d = env.start(handshake=False)
        d.client.start()
        d.client.send(HELLO, 0, jdump({"protocol": "registry-storage-ipc", "version": "2.0"}))
        msg = d.client.fatal.get(timeout=10)["message"]
        assert "2.0" in msg and "1.2" in msg, msg
        assert d.wait() != 0
    finally:
        env.cleanup()


@test
def other_protocol_is_fatal():
    for hello in ({"protocol": "something-else", "version": "1.0"}, {"version": "1.0"}):
        env = Env()
        try:
            d = env.start(handshake=False)
            d.client.start()
            d.client.send(HELLO, 0, jdump(hello))
            msg = d.client.fatal.get(timeout=10)["message"]
            assert "protocol" in msg and "registry-storage-ipc" in msg, msg
            assert d.wait() != 0
        finally:
            env.cleanup()


def expect_fatal(send_bad, needle=None):
    env = Env()
    try:
        d = env.start()
        send_bad(d.client, env.root)
        msg = d.client.fatal.get(timeout=10)["message"]
        if needle:
            assert needle in msg, msg
        assert d.wait() != 0
        return msg
    finally:
        env.cleanup()


@test
def protocol_errors_are_fatal():
    expect_fatal(lambda c, r: c.send_raw(struct.pack("<IBQ", 5, PING, 0)), "length")
    expect_fatal(lambda c, r: c.send_raw(struct.pack("<IBQ", 9 + MIB + 1, DATA, 1)), "length")
    expect_fatal(lambda c, r: c.send(0x55, 1), "type")
    expect_fatal(lambda c, r: c.send(DATA, 42, b"x"), "not an open stream")
    expect_fatal(lambda c, r: c.send(REQUEST, 3, b"{nope"), "JSON")
    expect_fatal(lambda c, r: c.send(REQUEST, 0, jdump({"op": "list", "path": "/"})), "id 0")
    expect_fatal(lambda c, r: c.send(HELLO, 0, jdump({"protocol": "registry-storage-ipc",
                                                      "version": "1.0"})))
    expect_fatal(lambda c, r: c.send(RESPONSE, 1, b"{}"))
    expect_fatal(lambda c, r: c.send(RESPONSE_PART, 1, b"{}"))
    expect_fatal(lambda c, r: c.send(WALK_CONTROL, 1, b"\x07"))


@test
def no_hello_first_is_fatal():
    env = Env()
    try:
        d = env.start(handshake=False)
        d.client.start()
        d.client.send(PING, 1)
        assert "HELLO" in d.client.fatal.get(timeout=10)["message"]
        assert d.wait() != 0
    finally:
        env.cleanup()


@with_driver
def eof_exits_zero_even_mid_stream(c, env):
    c.put_content("/big", b"q" * (8 * MIB))
    rid = c.request("get_content", path="/big")
    c.response(rid)
    c.next_frame(rid)  # one DATA frame, then hang up with the stream stalled


@with_driver
def ping_pong(c, env):
    for i in (1, 2, 2**64 - 1):
        c.ping(i)


@with_driver
def unknown_op_and_missing_fields_are_backend_errors(c, env):
    e = expect_error("backend", c.call, "frobnicate", path="/a")
    assert e["retry"] is False and "message" in e and "operation" in e, e
    expect_error("backend", c.call, "stat")
    expect_error("backend", c.call, "reader", path="/a")
    expect_error("backend", c.call, "reader", path="/a", offset="7")
    expect_error("backend", c.call, "writer", path="/a")
    expect_error("backend", c.call, "rename", source="/a")
    expect_error("backend", c.call, "walk", path="/")
    expect_error("backend", c.call, "writer_commit", handle=12345)
    rid = c.new_id()
    c.send(REQUEST, rid, b"[1,2]")
    expect_error("backend", c.response, rid)
    # put_content without a path: error, and its stream is discarded
    rid = c.new_id()
    c.send(REQUEST, rid, jdump({"op": "put_content"}))
    c.send(DATA, rid, b"abc")
    c.send(END, rid)
    expect_error("backend", c.response, rid)
    c.ping()


# ---------------------------------------------------------------------------------------------
# Paths.

VALID = ["/a", "/2", "/a.a", "/0-9/abcdefg", "/abc/1.2.3.4.5-6_zyx/123.z/4", "/.abc",
         "/abc./abc", "/a--b", "/_.abc", "/Docker/docker-registry"]
INVALID = ["", "/", "abc", "123.abc", "//bcd", "/abc_123/", "/a/../b", "/./a", "/a b", "/ä",
           "/a#upload", "/" + "a" * 256, "/" + "/".join(["abcdefghi"] * 103)]


@with_driver
def valid_paths_round_trip(c, env):
    for p in VALID:
        c.put_content(p, p.encode())
    for p in VALID:
        assert c.get_content(p) == p.encode(), p


@with_driver
def invalid_paths_are_rejected_by_every_op(c, env):
    for p in INVALID:
        for op, fields in [
            ("get_content", {}), ("reader", {"offset": 0}), ("writer", {"append": False}),
            ("delete", {}), ("url_for", {"method": "GET", "expires_in_ms": 1000}),
        ]:
            e = expect_error("invalid_path", c.call, op, path=p, **fields)
            assert e["path"] == p and e["reason"], e
        e = expect_error("invalid_path", c.put_content, p, b"data")
        assert e["path"] == p
        expect_error("invalid_path", c.call, "rename", source=p, dest="/ok")
        expect_error("invalid_path", c.call, "rename", source="/ok", dest=p)
        if p != "/":
            for op in ("stat", "list"):
                expect_error("invalid_path", c.call, op, path=p)
            expect_error("invalid_path", c.walk, p)
    # 1024 bytes is fine, 1025 is not
    ok = "/" + "/".join(["x" * 255] * 4)[: 1023]
    assert len(ok) == 1024
    c.put_content(ok, b"long")
    assert c.get_content(ok) == b"long"
    # a 255-byte last component: staging names must still fit the filesystem
    h, _ = c.writer(ok, append=False)
    c.write(h, b"longer")
    c.call("writer_close", handle=h)
    h, size = c.writer(ok, append=True)
    assert size == 6
    c.call("writer_commit", handle=h)
    assert c.get_content(ok) == b"longer"
    assert c.call("list", path=ok.rsplit("/", 1)[0]) == [ok]
    c.call("delete", path=ok)
    assert c.call("list", path="/") == [] and os.listdir(env.root) == []
    e = expect_error("invalid_path", c.call, "stat", path=ok + "y")
    assert "1025" in e["reason"], e
    # a big put with an invalid path: answered before END, the rest discarded
    rid = c.request("put_content", path="/bad path")
    answered_early = not c.send_stream(rid, [b"x" * MIB] * 20, stop_on_response=True)
    if not answered_early:
        c.send(END, rid)
    expect_error("invalid_path", c.response, rid)
    assert answered_early
    c.ping()


# ---------------------------------------------------------------------------------------------
# Content.


@with_driver
def put_get_payloads(c, env):
    payloads = [b"a", "\u00e9".encode(), os.urandom(32), os.urandom(MIB), b"\xff\xfe\x00\x80",
                b"", os.urandom(MIB + 7)]
    for i, data in enumerate(payloads):
        c.put_content(f"/p/{i}", data)
        assert c.get_content(f"/p/{i}") == data, i
    # truncate
    c.put_content("/t", os.urandom(MIB))
    c.put_content("/t", b"k" * 1024)
    assert c.get_content("/t") == b"k" * 1024
    assert c.call("stat", path="/t")["size"] == 1024
    # missing, directory
    e = expect_error("path_not_found", c.get_content, "/missing")
    assert e == {"kind": "path_not_found", "driver": "pydir", "path": "/missing"}, e
    expect_error("path_not_found", c.get_content, "/p")
    expect_error("path_not_found", c.get_content, "/t/below")
    # no staging files left behind
    for dirpath, dirs, files in os.walk(env.root):
        for f in files:
            assert "#" not in f, f


@with_driver
def reader_offsets(c, env):
    data = os.urandom(3 * MIB + 5)
    c.put_content("/r", data)
    for off in (0, 1, MIB, len(data) // 2, len(data) - 1, len(data), len(data) + 10):
        assert c.reader("/r", off) == data[off:], off
    expect_error("path_not_found", c.reader, "/nope", 0)
    expect_error("path_not_found", c.reader, "/nope", 100)
    c.put_content("/d/x", b"1")
    expect_error("path_not_found", c.reader, "/d", 0)


@with_driver
def put_conflicts_change_nothing(c, env):
    c.put_content("/f", b"file")
    expect_error("conflict", c.put_content, "/f/x", b"under a file")
    expect_error("conflict", c.put_content, "/f/x/y/z", b"deeper")
    assert c.get_content("/f") == b"file"
    c.put_content("/d/x", b"in dir")
    expect_error("conflict", c.put_content, "/d", b"over a dir")
    assert c.get_content("/d/x") == b"in dir"
    assert c.call("list", path="/") == ["/d", "/f"]
    # writer: below a file at open; over a directory at commit
    expect_error("conflict", c.writer, "/f/w")
    h, _ = c.writer("/d")
    c.write(h, b"abc")
    expect_error("conflict", c.call, "writer_commit", handle=h)
    # the handle is finished whatever the answer; the upload stays, as after a close
    e = expect_error("writer_finished", c.call, "writer_cancel", handle=h)
    assert e["state"] == "closed", e
    assert c.get_content("/d/x") == b"in dir"
    h, size = c.writer("/d", append=True)
    assert size == 3
    c.call("writer_cancel", handle=h)
    # a directory holding only an upload is replaced by a put
    h, _ = c.writer("/u/pending")
    c.write(h, b"zzz")
    c.call("writer_close", handle=h)
    c.put_content("/u", b"now a file")
    assert c.get_content("/u") == b"now a file"


@with_driver
def mod_time_after_rewrite(c, env):
    c.put_content("/m", b"1")
    t1 = c.call("stat", path="/m")["mod_time_ns"]
    time.sleep(0.02)
    c.put_content("/m", b"22")
    t2 = c.call("stat", path="/m")
    assert t2["mod_time_ns"] > t1 and t2["size"] == 2, (t1, t2)


@with_driver
def stat_and_list(c, env):
    expect_error("path_not_found", c.call, "stat", path="/")
    assert c.call("list", path="/") == []
    expect_error("path_not_found", c.call, "list", path="/a")
    c.put_content("/a/b/c", b"123")
    c.put_content("/a/b2", b"")
    c.put_content("/a/B", b"x")
    c.put_content("/z", b"x")
    s = c.call("stat", path="/a/b/c")
    assert s["path"] == "/a/b/c" and s["size"] == 3 and s["is_dir"] is False, s
    assert abs(s["mod_time_ns"] / 1e9 - time.time()) < 60, s
    s = c.call("stat", path="/a/b")
    assert s["is_dir"] is True and s["size"] == 0 and s["path"] == "/a/b", s
    s = c.call("stat", path="/")
    assert s["is_dir"] is True and s["path"] == "/", s
    expect_error("path_not_found", c.call, "stat", path="/a/nope")
    expect_error("path_not_found", c.call, "stat", path="/z/under-file")
    assert c.call("list", path="/") == ["/a", "/z"]
    assert c.call("list", path="/a") == ["/a/B", "/a/b", "/a/b2"]
    assert c.call("list", path="/a/b") == ["/a/b/c"]
    expect_error("path_not_found", c.call, "list", path="/z")
    expect_error("path_not_found", c.call, "list", path="/a/b/c")
    # foreign names in the root are skipped
    open(os.path.join(env.root, "a", "has space"), "w").close()
    open(os.path.join(env.root, "a", "x#put-123"), "w").close()
    assert c.call("list", path="/a") == ["/a/B", "/a/b", "/a/b2"]


def make_files(directory, count, width):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        os.close(os.open(os.path.join(directory, f"{i:0{width}d}"), os.O_CREAT | os.O_WRONLY,
                         0o644))


@with_driver
def large_listing_comes_in_parts(c, env):
    # 40,000 names of 200 bytes: about 8 MB of JSON, more than a frame holds. It comes as
    # RESPONSE_PART pieces of at most 1 MiB, then the RESPONSE with the last piece.
    make_files(os.path.join(env.root, "huge"), 40000, 200)
    open(os.path.join(env.root, "huge", "x#upload"), "w").close()  # hidden, as ever
    want = [f"/huge/{i:0200d}" for i in range(40000)]
    rid = c.request("list", path="/huge")
    whole, parts = c.raw_response(rid)
    assert json.loads(whole) == {"ok": want}
    assert len(whole) > 7 * MIB and len(parts) == len(whole) // MIB, (len(whole), parts)
    assert all(n == MIB for n in parts), parts
    # several at once, interleaved with other requests and pings
    rids = [c.request("list", path="/huge") for _ in range(3)]
    c.ping()
    assert c.call("stat", path="/huge")["is_dir"] is True
    for rid in rids:
        assert c.response(rid) == want
    assert len(c.call("list", path="/")) == 1
    seen = c.walk("/huge", decide=lambda i: 2 if i["path"].endswith("5") else 0)
    assert len(seen) == 6
    c.ping()


@slow
@with_driver
def listing_beyond_64_mib_is_a_backend_error(c, env):
    # 260,000 names of 255 bytes: about 65.5 MiB of JSON, more than a response may hold.
    make_files(os.path.join(env.root, "huge"), 260000, 255)
    e = expect_error("backend", c.call, "list", path="/huge", timeout=120)
    assert e["operation"] == "list" and str(64 * MIB) in e["message"], e
    c.ping()
    # one entry fewer than needed to cross the limit still comes back whole
    os.unlink(os.path.join(env.root, "huge", f"{0:0255d}"))
    overshoot = (len(jdump({"ok": [f"/huge/{i:0255d}" for i in range(1, 260000)]}))
                 - 64 * MIB)
    for i in range(1, 1 + overshoot // 264 + 1):
        os.unlink(os.path.join(env.root, "huge", f"{i:0255d}"))
    got = c.call("list", path="/huge", timeout=120)
    assert 64 * MIB - 264 <= len(jdump({"ok": got})) <= 64 * MIB, len(jdump({"ok": got}))


@with_driver
def uncommitted_content_is_invisible(c, env):
    h, size = c.writer("/up/dir/file")
    assert size == 0
    c.write(h, b"hidden")
    c.call("writer_close", handle=h)
    assert c.call("list", path="/") == []
    expect_error("path_not_found", c.call, "stat", path="/")
    expect_error("path_not_found", c.call, "stat", path="/up")
    expect_error("path_not_found", c.call, "stat", path="/up/dir/file")
    expect_error("path_not_found", c.call, "list", path="/up")
    expect_error("path_not_found", c.get_content, "/up/dir/file")
    expect_error("path_not_found", c.walk, "/up")
    assert c.walk("/") == []
    expect_error("path_not_found", c.call, "delete", path="/up")
    c.put_content("/other", b"x")
    assert c.call("list", path="/") == ["/other"]
    assert [i["path"] for i in c.walk("/")] == ["/other"]
    # the upload is still resumable after all that
    h, size = c.writer("/up/dir/file", append=True)
    assert size == 6, size
    c.write(h, b"!")
    c.call("writer_commit", handle=h)
    assert c.get_content("/up/dir/file") == b"hidden!"
    assert c.call("list", path="/") == ["/other", "/up"]


# ---------------------------------------------------------------------------------------------
# Writers.


@with_driver
def writer_round_trips(c, env):
    for i, data in enumerate([b"a", "\u00e9".encode(), os.urandom(32), os.urandom(MIB), b""]):
        h, size = c.writer(f"/w/{i}")
        assert size == 0
        c.write(h, data)
        c.call("writer_commit", handle=h)
        assert c.get_content(f"/w/{i}") == data
    # committed content stays readable, unchanged, until commit
    c.put_content("/keep", b"old")
    h, _ = c.writer("/keep")
    c.write(h, b"new content")
    assert c.get_content("/keep") == b"old"
    c.call("writer_commit", handle=h)
    assert c.get_content("/keep") == b"new content"


@with_driver
def writer_finishing_states(c, env):
    for first, state in (("writer_close", "closed"), ("writer_cancel", "cancelled"),
                         ("writer_commit", "committed")):
        h, _ = c.writer("/s")
        c.write(h, b"x")
        assert c.call(first, handle=h) is None
        # The handle is not open any more: every finishing request is an error (here naming
        # how it ended); only writer_drop may be answered null.
        for later in ("writer_commit", "writer_cancel", "writer_close"):
            e = expect_error("writer_finished", c.call, later, handle=h)
            assert e["state"] == state and e["path"] == "/s", e
        assert c.call("writer_drop", handle=h) is None
        expect_error("backend", c.call, "writer_commit", handle=h)  # dropped: unknown


@test
def data_after_finishing_is_fatal():
    def bad(c, root):
        h, _ = c.writer("/s2")
        c.write(h, b"early")
        c.call("writer_close", handle=h)
        c.send(DATA, h, b"late")

    expect_fatal(bad)


@test
def window_overflow_is_fatal():
    fds = []

    def bad(c, root):
        # An upload that is a FIFO nobody drains: the writer's thread blocks on its first
        # write and grants nothing, so the fifth MiB overflows the 4 MiB window.
        fifo = os.path.join(root, "fifo#upload")
        os.mkfifo(fifo)
        fds.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        h, size = c.writer("/fifo", append=True)
        for _ in range(5):
            c.send(DATA, h, b"z" * MIB)

    try:
        expect_fatal(bad, "window")
    finally:
        for fd in fds:
            os.close(fd)


@with_driver
def writer_append_rules(c, env):
    expect_error("path_not_found", c.writer, "/nothing", True)
    c.put_content("/d/x", b"1")
    expect_error("path_not_found", c.writer, "/d", True)
    # zero-byte put, then append
    c.put_content("/zero", b"")
    h, size = c.writer("/zero", append=True)
    assert size == 0
    c.write(h, b"appended")
    c.call("writer_commit", handle=h)
    assert c.get_content("/zero") == b"appended"
    # committed non-empty: unsupported
    e = expect_error("unsupported", c.writer, "/zero", True)
    assert e["operation"] == "append to committed content", e
    # zero-byte writer, then append
    h, _ = c.writer("/zw")
    c.call("writer_commit", handle=h)
    assert c.get_content("/zw") == b""
    h, size = c.writer("/zw", append=True)
    assert size == 0
    c.write(h, b"more")
    c.call("writer_commit", handle=h)
    assert c.get_content("/zw") == b"more"
    # append=false drops the pending upload
    h, _ = c.writer("/pend")
    c.write(h, b"first")
    c.call("writer_close", handle=h)
    h, size = c.writer("/pend", append=False)
    assert size == 0
    c.write(h, b"second")
    c.call("writer_commit", handle=h)
    assert c.get_content("/pend") == b"second"
    # cancel discards the upload and leaves committed content alone
    h, _ = c.writer("/pend", append=False)
    c.write(h, b"zzz")
    c.call("writer_cancel", handle=h)
    assert c.get_content("/pend") == b"second"
    expect_error("unsupported", c.writer, "/pend", True)
    h, _ = c.writer("/gone/deep/x")
    c.write(h, b"zzz")
    c.call("writer_cancel", handle=h)
    expect_error("path_not_found", c.writer, "/gone/deep/x", True)
    assert not os.path.exists(os.path.join(env.root, "gone")), "cancel did not prune"


@with_driver
def writer_drop_keeps_what_was_written(c, env):
    h, _ = c.writer("/dropped")
    c.write(h, b"a" * 100)
    c.write(h, b"b" * (2 * MIB))
    assert c.call("writer_drop", handle=h) is None
    h2, size = c.writer("/dropped", append=True)
    assert size == 100 + 2 * MIB, size
    c.write(h2, b"c")
    c.call("writer_commit", handle=h2)
    assert c.get_content("/dropped") == b"a" * 100 + b"b" * (2 * MIB) + b"c"
    # END on a writer handle is accepted
    h, _ = c.writer("/ended")
    c.write(h, b"x")
    c.send(END, h)
    c.call("writer_commit", handle=h)
    assert c.get_content("/ended") == b"x"


@with_driver
def later_writer_takes_over(c, env):
    def superseded(op, h):
        e = expect_error("writer_finished", c.call, op, handle=h)
        assert e["state"] == "superseded" and e["path"].startswith("/t"), e

    # the interleaving that once published BBBBBBBBBBAAAAAAAAAA: the superseded commit
    # publishes nothing, the later one exactly its own bytes
    h1, _ = c.writer("/t/p")
    h2, _ = c.writer("/t/p")
    c.write(h1, b"A" * 20)
    c.write(h2, b"B" * 10)
    superseded("writer_commit", h1)
    expect_error("path_not_found", c.get_content, "/t/p")
    c.call("writer_commit", handle=h2)
    assert c.get_content("/t/p") == b"B" * 10
    # after a commit, the superseded writer's cancel changes nothing
    h1, _ = c.writer("/t/p")
    c.write(h1, b"C" * (3 * MIB))
    h2, _ = c.writer("/t/p")
    c.write(h2, b"D" * (2 * MIB))
    c.call("writer_commit", handle=h2)
    superseded("writer_cancel", h1)
    assert c.get_content("/t/p") == b"D" * (2 * MIB)
    # a resume takes over from an open writer: a prefix of what it wrote, then its own
    h0, _ = c.writer("/t/r")
    c.write(h0, b"0" * 1000)
    c.call("writer_close", handle=h0)
    h1, size = c.writer("/t/r", append=True)
    assert size == 1000
    c.write(h1, b"1" * (300 * 1024))
    h2, start = c.writer("/t/r", append=True)
    assert 1000 <= start <= 1000 + 300 * 1024, start
    c.write(h2, b"2" * 10)
    superseded("writer_close", h1)
    c.call("writer_commit", handle=h2)
    assert c.get_content("/t/r") == (b"0" * 1000 + b"1" * (300 * 1024))[:start] + b"2" * 10
    # a superseded close or drop leaves the later writer's upload to resume
    h1, _ = c.writer("/t/u")
    c.write(h1, b"old")
    h2, _ = c.writer("/t/u")
    c.write(h2, b"newer")
    c.call("writer_close", handle=h2)
    superseded("writer_close", h1)
    h3, _ = c.writer("/t/u")
    h4, size = c.writer("/t/u", append=True)
    assert size == 0, size  # h3 started new, empty content
    assert c.call("writer_drop", handle=h3) is None
    c.write(h4, b"x")
    c.call("writer_close", handle=h4)
    h5, size = c.writer("/t/u", append=True)
    assert size == 1, size
    c.call("writer_cancel", handle=h5)
    # superseded writers leave no staging file behind
    for dirpath, dirs, files in os.walk(env.root):
        assert not any("#w-" in f for f in files), (dirpath, files)


@with_driver
def failed_write_is_answered_to_the_next_finishing_request(c, env):
    # An upload that is a FIFO whose reader is gone: every write fails (EPIPE).
    fifo = os.path.join(env.root, "kept#upload")
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    h, size = c.writer("/kept", append=True)
    os.close(fd)
    c.write(h, b"x" * (12 * MIB))  # beyond the window: credit keeps coming after the error
    e = expect_error("backend", c.call, "writer_commit", handle=h)
    assert e["path"] == "/kept" and e["operation"] == "write", e
    # nothing was published (the content has a hole) and the handle is finished
    expect_error("path_not_found", c.call, "stat", path="/kept")
    e = expect_error("writer_finished", c.call, "writer_cancel", handle=h)
    assert e["state"] == "closed", e
    expect_error("writer_finished", c.call, "writer_close", handle=h)
    os.unlink(fifo)
    # the same, answered to a cancel: the upload is discarded and the error reported once
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    h, size = c.writer("/kept", append=True)
    os.close(fd)
    c.write(h, b"y" * MIB)
    e = expect_error("backend", c.call, "writer_cancel", handle=h)
    assert e["operation"] == "write", e
    assert not os.path.exists(fifo)
    e = expect_error("writer_finished", c.call, "writer_commit", handle=h)
    assert e["state"] == "cancelled", e


@test
def writer_resumes_in_a_new_process():
    env = Env()
    try:
        d1 = env.start()
        c = d1.client
        h, _ = c.writer("/resume/blob")
        small = b"".join(os.urandom(32) for _ in range(100))  # 32-byte writes
        c.write(h, small, frame=32)
        big = os.urandom(10 * MIB)
        c.write(h, big)
        c.call("writer_close", handle=h)
        assert d1.close() == 0
        d2 = env.start()
        c = d2.client
        h, size = c.writer("/resume/blob", append=True)
        assert size == len(small) + len(big), size
        c.write(h, b"tail")
        c.call("writer_commit", handle=h)
        got = c.get_content("/resume/blob")
        assert got == small + big + b"tail"
    finally:
        assert all(s == 0 for s in env.cleanup())


# ---------------------------------------------------------------------------------------------
# Rename, delete, url_for.


@with_driver
def rename_rules(c, env):
    c.put_content("/src/a/file", b"content")
    c.call("rename", source="/src/a/file", dest="/dst/x/y")
    assert c.get_content("/dst/x/y") == b"content"
    expect_error("path_not_found", c.get_content, "/src/a/file")
    assert not os.path.exists(os.path.join(env.root, "src")), "empty parents not pruned"
    # overwrite
    c.put_content("/o1", b"one")
    c.put_content("/o2", b"two")
    c.call("rename", source="/o1", dest="/o2")
    assert c.get_content("/o2") == b"one"
    # missing source: dest untouched
    e = expect_error("path_not_found", c.call, "rename", source="/missing", dest="/o2")
    assert e["path"] == "/missing"
    assert c.get_content("/o2") == b"one"
    # directory as source is not a file
    e = expect_error("path_not_found", c.call, "rename", source="/dst", dest="/q")
    assert e["path"] == "/dst"
    # from under a file (Go TestMoveInvalid)
    c.put_content("/notadir", b"f")
    e = expect_error("path_not_found", c.call, "rename", source="/notadir/foo",
                     dest="/notadir/bar")
    assert e["path"] == "/notadir/foo"
    assert c.get_content("/notadir") == b"f"
    # dest a directory / below a file
    expect_error("conflict", c.call, "rename", source="/o2", dest="/dst")
    expect_error("conflict", c.call, "rename", source="/o2", dest="/notadir/x")
    assert c.get_content("/o2") == b"one"
    # uncommitted source is not a file
    h, _ = c.writer("/unc")
    c.write(h, b"u")
    c.call("writer_close", handle=h)
    expect_error("path_not_found", c.call, "rename", source="/unc", dest="/u2")
    c.call("rename", source="/o2", dest="/o2")
    assert c.get_content("/o2") == b"one"


@with_driver
def delete_rules(c, env):
    expect_error("invalid_path", c.call, "delete", path="/")
    expect_error("path_not_found", c.call, "delete", path="/nope")
    for p in ("/a/b", "/a/bc", "/a/b-c/x", "/a/b/d/e", "/a/b/f"):
        c.put_content(p + ("/g" if p == "/a/b" else ""), b"x")
    h, _ = c.writer("/a/b/pending")
    c.write(h, b"p")
    c.call("writer_close", handle=h)
    c.call("delete", path="/a/b")
    assert c.call("list", path="/a") == ["/a/b-c", "/a/bc"]
    assert not os.path.exists(os.path.join(env.root, "a", "b"))
    expect_error("path_not_found", c.writer, "/a/b/pending", True)
    c.call("delete", path="/a/bc")
    c.call("delete", path="/a/b-c/x")
    assert c.call("list", path="/") == []
    assert os.listdir(env.root) == [], os.listdir(env.root)
    # a file's own pending upload goes with it
    c.put_content("/f", b"1")
    h, _ = c.writer("/f")
    c.write(h, b"2")
    c.call("writer_close", handle=h)
    c.call("delete", path="/f")
    expect_error("path_not_found", c.writer, "/f", True)


@with_driver
def url_for_is_unsupported(c, env):
    for method in ("GET", "HEAD"):
        e = expect_error("unsupported", c.call, "url_for", path="/a", method=method,
                         expires_in_ms=60000)
        assert e == {"kind": "unsupported", "driver": "pydir", "operation": "url_for"}, e


# ---------------------------------------------------------------------------------------------
# Walk.


def build_tree(c):
    for p in ("/w/a/1", "/w/a/2", "/w/a/sub/x", "/w/b", "/w/b-c/y", "/w/c/z/deep", "/w/d"):
        c.put_content(p, p.encode())


@with_driver
def walk_order_skip_stop(c, env):
    expect_error("path_not_found", c.walk, "/w")
    assert c.walk("/") == []
    build_tree(c)
    full = ["/w", "/w/a", "/w/a/1", "/w/a/2", "/w/a/sub", "/w/a/sub/x", "/w/b", "/w/b-c",
            "/w/b-c/y", "/w/c", "/w/c/z", "/w/c/z/deep", "/w/d"]
    infos = c.walk("/")
    assert [i["path"] for i in infos] == full, [i["path"] for i in infos]
    for i in infos:
        assert i["is_dir"] == (i["path"] in ("/w", "/w/a", "/w/a/sub", "/w/b-c", "/w/c",
                                             "/w/c/z")), i
        assert i["size"] == (0 if i["is_dir"] else len(i["path"])), i
    assert [i["path"] for i in c.walk("/w/a")] == ["/w/a/1", "/w/a/2", "/w/a/sub",
                                                    "/w/a/sub/x"]
    expect_error("path_not_found", c.walk, "/w/b")
    expect_error("path_not_found", c.walk, "/missing")
    # skip a directory
    seen = c.walk("/w", decide=lambda i: 1 if i["path"] == "/w/a" else 0)
    assert [i["path"] for i in seen] == ["/w/a", "/w/b", "/w/b-c", "/w/b-c/y", "/w/c",
                                         "/w/c/z", "/w/c/z/deep", "/w/d"]
    # skip on a file: the rest of its directory
    seen = c.walk("/w", decide=lambda i: 1 if i["path"] == "/w/a/1" else 0)
    assert [i["path"] for i in seen] == ["/w/a", "/w/a/1", "/w/b", "/w/b-c", "/w/b-c/y",
                                         "/w/c", "/w/c/z", "/w/c/z/deep", "/w/d"]
    # stop
    seen = c.walk("/w", decide=lambda i: 2 if i["path"] == "/w/a/sub" else 0)
    assert [i["path"] for i in seen] == ["/w/a", "/w/a/1", "/w/a/2", "/w/a/sub"]
    c.ping()


@with_driver
def walk_start_after(c, env):
    build_tree(c)

    def paths(hint, root="/w"):
        return [i["path"] for i in c.walk(root, start_after=hint)]

    assert paths("/w/a/2") == ["/w/a/sub", "/w/a/sub/x", "/w/b", "/w/b-c", "/w/b-c/y",
                               "/w/c", "/w/c/z", "/w/c/z/deep", "/w/d"]
    # component-wise: everything below /w/b comes before /w/b-c
    assert paths("/w/b") == ["/w/b-c", "/w/b-c/y", "/w/c", "/w/c/z", "/w/c/z/deep", "/w/d"]
    assert paths("/w/a") == ["/w/a/1", "/w/a/2", "/w/a/sub", "/w/a/sub/x", "/w/b", "/w/b-c",
                             "/w/b-c/y", "/w/c", "/w/c/z", "/w/c/z/deep", "/w/d"]
    assert paths("/w/c/z/deep") == ["/w/d"]
    assert paths("/w/zzz") == []
    assert paths("/a") == paths(None)
    assert paths("/w/a/sub/m") == ["/w/a/sub/x", "/w/b", "/w/b-c", "/w/b-c/y", "/w/c",
                                   "/w/c/z", "/w/c/z/deep", "/w/d"]


@with_driver
def walk_concurrent_delete_and_interleaving(c, env):
    build_tree(c)
    # While a walk waits for our control, other requests go on; deleted entries are skipped.
    rid = c.request("walk", path="/w", start_after=None)
    seen = []
    while True:
        ftype, payload = c.next_frame(rid)
        if ftype == RESPONSE:
            assert json.loads(payload) == {"ok": None}
            break
        info = json.loads(payload)
        seen.append(info["path"])
        if info["path"] == "/w/a":
            c.call("delete", path="/w/a/2")
            c.call("delete", path="/w/b")
            c.ping()
        c.send(WALK_CONTROL, rid, b"\x00")
    assert seen == ["/w/a", "/w/a/1", "/w/a/sub", "/w/a/sub/x", "/w/b-c", "/w/b-c/y", "/w/c",
                    "/w/c/z", "/w/c/z/deep", "/w/d"], seen


@with_driver
def client_reset_stops_a_walk(c, env):
    build_tree(c)
    rid = c.request("walk", path="/", start_after=None)
    ftype, payload = c.next_frame(rid)
    assert ftype == WALK_ENTRY and json.loads(payload)["path"] == "/w"
    c.send(RESET, rid)
    ftype, payload = c.next_frame(rid)
    assert ftype == RESPONSE and json.loads(payload) == {"ok": None}, (ftype, payload)
    c.send(WALK_CONTROL, rid, b"\x00")  # late: ignored
    c.ping()


# ---------------------------------------------------------------------------------------------
# Big streams, flow control, concurrency.


def chunks_of(seed, total, size=MIB):
    rnd = random.Random(seed)
    left = total
    while left:
        n = min(size, left)
        yield rnd.randbytes(n)
        left -= n


def sha_of(seed, total):
    h = hashlib.sha256()
    for ch in chunks_of(seed, total):
        h.update(ch)
    return h.hexdigest()


@with_driver
def big_stream_both_ways(c, env):
    total = BIG_MIB * MIB + 12345
    want = sha_of(1, total)
    t = time.monotonic()
    c.put_content("/big/put", chunks=chunks_of(1, total))
    t_put = time.monotonic() - t
    h = hashlib.sha256()
    t = time.monotonic()
    assert c.get_content("/big/put", sink=h.update) == total
    t_get = time.monotonic() - t
    assert h.hexdigest() == want
    # writer + reader
    handle, _ = c.writer("/big/writer")
    t = time.monotonic()
    c.send_stream(handle, chunks_of(1, total))
    c.call("writer_commit", handle=handle)
    t_w = time.monotonic() - t
    h = hashlib.sha256()
    t = time.monotonic()
    assert c.reader("/big/writer", 0, sink=h.update) == total
    t_r = time.monotonic() - t
    assert h.hexdigest() == want
    h = hashlib.sha256()
    off = total - 3 * MIB - 17
    c.reader("/big/writer", off, sink=h.update)
    tail = b"".join(chunks_of(1, total))[off:]
    assert h.hexdigest() == hashlib.sha256(tail).hexdigest()
    mb = total / MIB
    print(f"    {mb:.0f} MiB: put {mb / t_put:.0f} MiB/s, get {mb / t_get:.0f} MiB/s, "
          f"writer {mb / t_w:.0f} MiB/s, reader {mb / t_r:.0f} MiB/s "
          f"(incl. client-side generation and hashing)")


@with_driver
def server_respects_the_window(c, env):
    c.put_content("/win", b"w" * (16 * MIB))
    rid = c.request("get_content", path="/win")
    c.response(rid)
    time.sleep(0.5)  # grant nothing: the server must stop at 4 MiB
    got = 0
    q = c.q(rid)
    while not q.empty():
        ftype, payload = q.get()
        assert ftype == DATA
        got += len(payload)
    assert got == WINDOW, got
    # a stalled stream does not stall the connection
    c.ping()
    assert c.call("stat", path="/win")["size"] == 16 * MIB
    # grant and read the rest
    c.send(CREDIT, rid, struct.pack("<I", got))
    rest = c.recv_stream(rid)
    assert got + len(rest) == 16 * MIB


@with_driver
def client_reset_stops_a_reader(c, env):
    c.put_content("/rs", b"r" * (32 * MIB))
    rid = c.request("reader", path="/rs", offset=0)
    c.response(rid)
    c.next_frame(rid)
    c.send(RESET, rid)
    c.send(CREDIT, rid, struct.pack("<I", 8 * MIB))  # late frames are ignored
    time.sleep(0.2)
    drained = 0
    q = c.q(rid)
    while not q.empty():
        ftype, payload = q.get()
        assert ftype == DATA, ftype  # never END after a RESET
        drained += len(payload)
    assert drained <= WINDOW, drained
    c.ping()
    assert c.get_content("/rs") == b"r" * (32 * MIB)


@with_driver
def client_reset_abandons_a_put(c, env):
    rid = c.request("put_content", path="/abandoned")
    c.send(DATA, rid, b"part")
    c.send(RESET, rid)
    c.send(DATA, rid, b"late, ignored")
    expect_error("backend", c.response, rid)
    expect_error("path_not_found", c.call, "stat", path="/abandoned")
    # beyond the first window (the server grants credit as it writes), in a subdirectory
    rid = c.request("put_content", path="/sub/dir/abandoned")
    c.send_stream(rid, [b"z" * MIB] * 7)
    c.send(RESET, rid)
    expect_error("backend", c.response, rid)
    expect_error("path_not_found", c.call, "stat", path="/sub/dir/abandoned")
    # right behind the request, before any data
    rid = c.new_id()
    c.send_raw(pack(REQUEST, rid, jdump({"op": "put_content", "path": "/nothing"}))
               + pack(RESET, rid))
    expect_error("backend", c.response, rid)
    assert os.listdir(env.root) == [], os.listdir(env.root)  # no temporary file left
    # over committed content: the old content stays, whole
    c.put_content("/keep", b"old")
    rid = c.request("put_content", path="/keep")
    c.send_stream(rid, [b"new" * 1000])
    c.send(RESET, rid)
    expect_error("backend", c.response, rid)
    assert c.get_content("/keep") == b"old"
    assert os.listdir(env.root) == ["keep"], os.listdir(env.root)
    c.ping()


def open_files_of(pid, path):
    fds = os.path.join("/proc", str(pid), "fd")
    found = []
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)) == path:
                found.append(fd)
        except OSError:
            pass
    return found


@with_driver
def reset_right_behind_a_request(c, env):
    # A RESET that follows its request at once (the caller went away before the answer) still
    # stops the stream: the server sends no more than its answer and frees the file.
    c.put_content("/r", b"r" * (16 * MIB))
    pid = env.drivers[0].proc.pid
    for op, fields in (("get_content", {}), ("reader", {"offset": 5})):
        rid = c.new_id()
        c.send_raw(pack(REQUEST, rid, jdump({"op": op, "path": "/r", **fields}))
                   + pack(RESET, rid))
        ftype, _ = c.next_frame(rid)
        assert ftype == RESPONSE, ftype
        deadline = time.monotonic() + 10
        while open_files_of(pid, os.path.realpath(os.path.join(env.root, "r"))):
            assert time.monotonic() < deadline, f"{op}: the file is still open"
            time.sleep(0.05)
        c.ping()
        sent = 0
        while not c.q(rid).empty():
            ftype, payload = c.q(rid).get()
            assert ftype == DATA, ftype  # never END after a RESET
            sent += len(payload)
        assert sent < WINDOW, (op, sent)
    # the same for a walk: it ends and answers, without waiting for a WALK_CONTROL
    build_tree(c)
    rid = c.new_id()
    c.send_raw(pack(REQUEST, rid, jdump({"op": "walk", "path": "/", "start_after": None}))
               + pack(RESET, rid))
    frames = []
    while True:
        ftype, payload = c.next_frame(rid, timeout=10)
        frames.append(ftype)
        if ftype == RESPONSE:
            break
    assert frames.count(WALK_ENTRY) <= 1, frames
    c.ping()


@with_driver
def client_reset_drops_a_writer(c, env):
    # A RESET on a writer handle is a writer_drop without a RESPONSE: what was written stays,
    # resumable.
    h, _ = c.writer("/wr")
    c.write(h, b"a" * (6 * MIB + 5))  # beyond the first window
    c.send(RESET, h)
    h2, size = c.writer("/wr", append=True)  # at once: it sees everything the handle got
    assert size == 6 * MIB + 5, size
    assert c.q(h).empty(), "a RESPONSE for a RESET handle"
    c.send(RESET, h)  # late frames for the dropped handle: ignored
    c.send(END, h)
    c.send(CREDIT, h, struct.pack("<I", MIB))
    expect_error("backend", c.call, "writer_commit", handle=h)  # gone, as after writer_drop
    c.write(h2, b"b")
    c.call("writer_commit", handle=h2)
    assert c.get_content("/wr") == b"a" * (6 * MIB + 5) + b"b"
    # a RESET after a finishing request is late: ignored, the handle keeps its final state
    h, _ = c.writer("/wr2")
    c.write(h, b"x")
    c.call("writer_commit", handle=h)
    c.send(RESET, h)
    e = expect_error("writer_finished", c.call, "writer_cancel", handle=h)
    assert e["state"] == "committed", e
    # ... also when it is right behind the request, before the handle's thread finished it
    for finish, state in (("writer_commit", "committed"), ("writer_close", "closed"),
                          ("writer_cancel", "cancelled")):
        h, _ = c.writer("/wr3")
        c.write(h, b"y" * MIB)
        rid = c.new_id()
        c.send_raw(pack(REQUEST, rid, jdump({"op": finish, "handle": h})) + pack(RESET, h))
        assert c.response(rid) is None
        e = expect_error("writer_finished", c.call, "writer_commit", handle=h)
        assert e["state"] == state, (finish, e)
    assert c.get_content("/wr3") == b"y" * MIB  # the first one's commit
    # a resume right behind a RESET or an unanswered writer_drop sees all that was written
    for i in range(6):
        h, _ = c.writer(f"/race/{i}")
        c.write(h, b"q" * (3 * MIB + i), frame=64 * 1024)
        if i % 2:
            c.send(RESET, h)
        else:
            c.request("writer_drop", handle=h)  # its answer is not waited for
        h2, size = c.writer(f"/race/{i}", append=True)
        assert size == 3 * MIB + i, (i, size)
        c.call("writer_cancel", handle=h2)
    c.ping()


@with_driver
def late_frames_for_finished_ids_are_ignored(c, env):
    c.put_content("/f", b"0123456789")
    rid_put = c.request("put_content", path="/g")
    c.send(END, rid_put)
    assert c.response(rid_put) is None
    rid_get = c.request("get_content", path="/f")
    c.response(rid_get)
    assert c.recv_stream(rid_get) == b"0123456789"
    rid_stat = c.request("stat", path="/f")
    c.response(rid_stat)
    rid_walk = c.request("walk", path="/", start_after=None)
    while c.next_frame(rid_walk)[0] != RESPONSE:
        c.send(WALK_CONTROL, rid_walk, b"\x00")
    for rid in (rid_put, rid_get, rid_stat, rid_walk):
        c.send(CREDIT, rid, struct.pack("<I", 4 * MIB))
        c.send(RESET, rid)
        c.send(END, rid)
    c.ping()
    assert c.get_content("/g") == b"" and c.get_content("/f") == b"0123456789"


@with_driver
def concurrent_readers(c, env):
    data = os.urandom(8 * MIB)
    c.put_content("/cr", data)
    errors = []

    def one(seed):
        try:
            off = random.Random(seed).randrange(len(data))
            assert c.reader("/cr", off) == data[off:]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors


@with_driver
def concurrent_writers_and_puts(c, env):
    errors = []

    def writer(i):
        try:
            h, _ = c.writer(f"/cw/{i}")
            for k in range(4):
                c.write(h, bytes([i]) * (256 * 1024 + k))
            c.call("writer_commit", handle=h)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(32)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    for i in range(32):
        assert c.get_content(f"/cw/{i}") == b"".join(bytes([i]) * (256 * 1024 + k)
                                                     for k in range(4))
    assert len(c.call("list", path="/cw")) == 32
    # concurrent put_content on one path: the survivor is one whole payload
    payloads = [bytes([65 + i]) * (MIB + i * 1000) for i in range(8)]

    def put(i):
        try:
            c.put_content("/same", payloads[i])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    assert c.get_content("/same") in payloads
    assert sorted(os.listdir(env.root)) == ["cw", "same"]


@with_driver
def many_concurrent_small_requests(c, env):
    for i in range(50):
        c.put_content(f"/m/{i:02d}", str(i).encode())
    rids = [c.request("stat", path=f"/m/{i:02d}") for i in range(50)]
    rids += [c.request("list", path="/m") for _ in range(20)]
    rids += [c.request("get_content", path=f"/m/{i:02d}") for i in range(50)]
    for rid in rids[:50]:
        assert c.response(rid)["is_dir"] is False
    for rid in rids[50:70]:
        assert len(c.response(rid)) == 50
    for i, rid in enumerate(rids[70:]):
        c.response(rid)
        assert c.recv_stream(rid) == str(i).encode()


# ---------------------------------------------------------------------------------------------
# Random operation sequences against a plain model of the contract.


class Model:
    def __init__(self):
        self.files = {}  # committed content
        self.uploads = {}  # closed, uncommitted writer content

    @staticmethod
    def below(p, q):
        return q.startswith(p + "/")

    def is_dir(self, p):
        return p == "/" and bool(self.files) or any(self.below(p, f) for f in self.files)

    def file_ancestor(self, p):
        parts = p.split("/")
        return any("/".join(parts[:i]) in self.files for i in range(2, len(parts)))

    def drop_uploads_below(self, p):
        for u in [u for u in self.uploads if self.below(p, u)]:
            del self.uploads[u]

    def put(self, p, data):
        if self.file_ancestor(p):
            return ("conflict",)
        if self.is_dir(p):
            return ("conflict",)
        self.drop_uploads_below(p)
        self.files[p] = data
        return ("ok", None)

    def get(self, p):
        return ("ok", self.files[p]) if p in self.files else ("path_not_found",)

    def stat(self, p):
        if p in self.files:
            return ("ok", (len(self.files[p]), False))
        if self.is_dir(p):
            return ("ok", (0, True))
        return ("path_not_found",)

    def children(self, p):
        prefix = "/" if p == "/" else p + "/"
        out = set()
        for f in self.files:
            if f.startswith(prefix):
                out.add(prefix + f[len(prefix):].split("/")[0])
        return sorted(out)

    def list(self, p):
        kids = self.children(p)
        if not kids and p != "/":
            return ("path_not_found",)
        return ("ok", kids)

    def delete(self, p):
        if p in self.files:
            del self.files[p]
        elif self.is_dir(p):
            for f in [f for f in self.files if self.below(p, f)]:
                del self.files[f]
            self.drop_uploads_below(p)
        else:
            return ("path_not_found",)
        self.uploads.pop(p, None)
        return ("ok", None)

    def rename(self, src, dst):
        if src not in self.files:
            return ("path_not_found", src)
        if src == dst:
            return ("ok", None)
        if self.is_dir(dst) or self.file_ancestor(dst):
            return ("conflict",)
        self.drop_uploads_below(dst)
        self.files[dst] = self.files.pop(src)
        return ("ok", None)

    def writer(self, p, append):
        if append:
            if p in self.uploads:
                return ("ok", len(self.uploads[p]))
            if p in self.files and not self.files[p]:
                self.uploads[p] = b""
                return ("ok", 0)
            if p in self.files:
                return ("unsupported",)
            return ("path_not_found",)
        if self.file_ancestor(p):
            return ("conflict",)
        self.uploads[p] = b""
        return ("ok", 0)

    def walk(self, p="/"):
        out = []
        for k in self.children(p):
            out.append(k)
            if k not in self.files:
                out.extend(self.walk(k))
        return out


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except DriverError as e:
        return (e.kind, e.obj.get("path")) if e.kind == "path_not_found" else (e.kind,)


@with_driver
def random_operations_match_a_model(c, env):
    rnd = random.Random(20240501)
    names = ["a", "b", "a-b"]
    paths = ["/" + "/".join(rnd.choice(names) for _ in range(rnd.randint(1, 3)))
             for _ in range(200)]
    paths = sorted(set(paths))
    m = Model()
    tally = collections.Counter()
    for step in range(1500):
        p = q = rnd.choice(paths)
        op = rnd.choice(["put", "put", "get", "stat", "list", "delete", "rename", "writer",
                         "writer", "walk"])
        data = os.urandom(rnd.choice([0, 1, 7, 100]))
        if op == "put":
            got, want = outcome(c.put_content, p, data), m.put(p, data)
        elif op == "get":
            got, want = outcome(c.get_content, p), m.get(p)
        elif op == "stat":
            q = rnd.choice([p, "/"])

            def st(q=q):
                i = c.call("stat", path=q)
                assert i["path"] == q
                return (i["size"], i["is_dir"])

            got, want = outcome(st), m.stat(q)
        elif op == "list":
            q = rnd.choice([p, p.rsplit("/", 1)[0] or "/", "/"])
            got, want = outcome(lambda: c.call("list", path=q)), m.list(q)
        elif op == "delete":
            got, want = outcome(lambda: c.call("delete", path=p)), m.delete(p)
        elif op == "rename":
            dst = rnd.choice(paths)
            got = outcome(lambda: c.call("rename", source=p, dest=dst))
            want = m.rename(p, dst)
            if want[0] == "path_not_found":
                want = ("path_not_found", p)
        elif op == "walk":
            got = outcome(lambda: [i["path"] for i in c.walk("/")])
            want = ("ok", m.walk())
        else:
            append = rnd.random() < 0.5
            got = outcome(c.writer, p, append)
            want = m.writer(p, append)
            if got[0] == "ok":
                handle, size = got[1]
                got = ("ok", size)
                assert got == want, (step, op, p, got, want)
                c.write(handle, data)
                finish = rnd.choice(["writer_close", "writer_commit", "writer_cancel"])
                res = outcome(lambda: c.call(finish, handle=handle))
                content = m.uploads[p] + data
                if finish == "writer_close":
                    m.uploads[p] = content
                    want_res = ("ok", None)
                elif finish == "writer_cancel":
                    del m.uploads[p]
                    want_res = ("ok", None)
                elif m.is_dir(p):
                    want_res = ("conflict",)
                    m.uploads[p] = content  # the upload stays, as after a close
                else:
                    m.drop_uploads_below(p)
                    del m.uploads[p]
                    m.files[p] = content
                    want_res = ("ok", None)
                assert res == want_res, (step, finish, p, res, want_res)
                tally[(finish, res[0])] += 1
                continue
        if want[0] == "path_not_found" and len(want) == 1:
            want = ("path_not_found", q)
        assert got == want, (step, op, p, got, want)
        tally[(op, got[0])] += 1
    print("    " + ", ".join(f"{op} {kind}: {n}" for (op, kind), n in sorted(tally.items())))
    # nothing but valid names and hidden uploads is left on disk
    for dirpath, dirs, files in os.walk(env.root):
        for f in files:
            rel = "/" + os.path.relpath(os.path.join(dirpath, f), env.root)
            assert rel in m.files or (rel.endswith("#upload") and rel[:-7] in m.uploads), rel


# ---------------------------------------------------------------------------------------------
# Protocol 1.2 and the rules PROTOCOL.md pins down.

MAX_EXACT = (1 << 53) - 1


def no_frame_within(client, fid, seconds):
    """True when nothing arrives on `fid` within `seconds`."""
    try:
        client.q(fid).get(timeout=seconds)
    except queue.Empty:
        return True
    return False


@test
def file_info_takes_the_form_of_the_lower_version():
    env = Env()
    try:
        for version in ("1.0", "1.1", "1.2", "1.9"):
            d = env.start(version=version)
            c = d.client
            c.put_content("/fi/f", b"abc")
            ns = os.stat(os.path.join(env.root, "fi", "f")).st_mtime_ns
            info = c.call("stat", path="/fi/f")
            entries = c.walk("/fi")
            for got in (info, entries[0]):
                assert got["path"] == "/fi/f" and got["size"] == 3, got
                if version in ("1.0", "1.1"):
                    assert got["mod_time_ns"] == ns and "mod_time_s" not in got, got
                else:
                    assert "mod_time_ns" not in got, got
                    assert (got["mod_time_s"], got["mod_time_nanos"]) == divmod(ns, 10**9), got
            c.close()
            d.wait()
    finally:
        env.cleanup()


@test
def a_1_2_client_gets_the_1_1_windows():
    env = Env()
    try:
        d = env.start(version="1.2")
        c = d.client
        # put_content: the window starts at 64 KiB and credit comes as the server writes.
        data = os.urandom(3 * MIB + 5)
        rid = c.request("put_content", path="/w/big")
        with c.window_cv:
            c.windows[rid] = 64 << 10
        assert c.send_stream(rid, [data[i:i + MIB] for i in range(0, len(data), MIB)])
        c.send(END, rid)
        assert c.response(rid) is None
        # reader: nothing before the client's CREDIT, then exactly what it grants.
        rid = c.request("reader", path="/w/big", offset=0)
        assert c.response(rid) is None
        assert no_frame_within(c, rid, 0.3), "no DATA before CREDIT"
        c.send(CREDIT, rid, struct.pack("<I", 1000))
        ftype, payload = c.next_frame(rid)
        assert ftype == DATA and len(payload) == 1000, (ftype, len(payload))
        assert no_frame_within(c, rid, 0.3), "nothing beyond the credit"
        c.send(CREDIT, rid, struct.pack("<I", len(data)))
        got = payload + c.recv_stream(rid, grant=False)
        assert got == data
        # More than 64 KiB before any credit is an overrun.
        rid = c.request("put_content", path="/w/over")
        c.send(DATA, rid, b"x" * ((64 << 10) + 1))
        msg = c.fatal.get(timeout=10)["message"]
        assert "window" in msg, msg
        assert d.wait() != 0
    finally:
        env.cleanup()


@test
def a_writer_reset_before_its_response_is_answered_and_dropped():
    env = Env()
    try:
        d = env.start()
        c = d.client
        rid = c.request("writer", path="/r/w", append=False)
        c.send(RESET, rid)
        assert c.response(rid) == {"size": 0}
        err = expect_error("backend", c.call, "writer_commit", handle=rid)
        assert "no open writer with handle" in err["message"], err
        assert err["operation"] == "writer_commit" and err["path"] is None, err
        expect_error("path_not_found", c.call, "stat", path="/r/w")
        # A RESET on a request without a stream: ignored, answered.
        rid = c.request("list", path="/")
        c.send(RESET, rid)
        assert c.response(rid) == []
        c.ping()
    finally:
        assert env.cleanup() == [0]


@with_driver
def numbers_beyond_2_53_are_malformed_requests(c, env):
    c.put_content("/n", b"numbers")
    for fields, op in ((dict(path="/n", offset=MAX_EXACT + 1), "reader"),
                       (dict(handle=MAX_EXACT + 1), "writer_commit")):
        err = expect_error("backend", c.call, op, **fields)
        assert err["operation"] == op and err["path"] is None, err
    err = expect_error("backend", c.call, "stat", path=None)
    assert err["operation"] == "stat" and err["path"] is None, err
    # At the limit: an empty stream.
    assert c.reader("/n", MAX_EXACT) == b""


@test
def a_null_parameter_is_absent():
    root = tempfile.mkdtemp(prefix="pydir-root-")
    try:
        d = Driver(root, params={"rootdirectory": None}, handshake=None)
        assert d.wait() == 2
        assert "required" in d.stderr(), d.stderr()
        d.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------


def main():
    global BIG_MIB
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only the tests whose name contains this")
    ap.add_argument("--big-mib", type=int, default=BIG_MIB)
    ap.add_argument("--slow", action="store_true",
                    help="also run the slow tests (a listing beyond 64 MiB, about 30 s)")
    args = ap.parse_args()
    BIG_MIB = args.big_mib
    failed = []
    matching = [t for t in TESTS if args.k in t.__name__]
    selected = [t for t in matching if args.slow or not getattr(t, "slow", False)]
    skipped = len(matching) - len(selected)
    t0 = time.monotonic()
    for t in selected:
        start = time.monotonic()
        try:
            t()
            print(f"ok    {t.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
        except BaseException:
            failed.append(t.__name__)
            print(f"FAIL  {t.__name__}", flush=True)
            traceback.print_exc()
    print(f"ran in {time.monotonic() - t0:.1f}s"
          + (f"; {skipped} slow test(s) skipped (--slow runs them)" if skipped else ""))
    if failed:
        print("failed: " + ", ".join(failed))
    # The plain closing line test runners read: 'N passed, N failed, N skipped'.
    print(f"{len(selected) - len(failed)} passed, {len(failed)} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
