// Protocol tests of registry-storage-jsdir with nothing but Node's standard library: this file
// plays the registry's side of storagedriver-ipc/PROTOCOL.md. Run: node --test examples/js-driver/tests/
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');

const EXE = path.join(__dirname, '..', 'registry-storage-jsdir');
const T = {
  HELLO: 0x01, WELCOME: 0x02, REQUEST: 0x10, RESPONSE: 0x11, RESPONSE_PART: 0x12,
  DATA: 0x20, END: 0x21, CREDIT: 0x22, RESET: 0x23, WALK_ENTRY: 0x30, WALK_CONTROL: 0x31,
  PING: 0x40, PONG: 0x41, FATAL: 0x7f,
};
const WAIT_MS = 10000;

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'jsdir-test-'));
}

// Starts the driver with `params` (a JSON value, given in the environment, or in argument 1
// with `inArg`), listening on a fresh socket. Resolves with { child, conn, exited, stderr }:
// `conn` is null when the driver exited before connecting.
function start(params, { inArg = false, env = {} } = {}) {
  const dir = tempDir();
  const sockPath = path.join(dir, 'ipc.sock');
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.listen(sockPath, () => {
      const childEnv = { ...process.env, REGISTRY_STORAGE_IPC_SOCKET: sockPath, ...env };
      delete childEnv.REGISTRY_STORAGE_IPC_PARAMETERS;
      const args = [];
      if (params !== undefined) {
        if (inArg) args.push(JSON.stringify(params));
        else childEnv.REGISTRY_STORAGE_IPC_PARAMETERS = JSON.stringify(params);
      }
      Object.assign(childEnv, env);
      const child = spawn(EXE, args, { env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const exited = new Promise((r) => child.on('exit', (code) => r(code)));
      const result = { child, exited, get stderr() { return stderr; }, conn: null };
      const timer = setTimeout(() => reject(new Error('the driver neither connected nor exited')), WAIT_MS);
      server.once('connection', (sock) => {
        clearTimeout(timer);
        server.close();
        result.conn = new Conn(sock);
        resolve(result);
      });
      exited.then(() => {
        clearTimeout(timer);
        server.close();
        resolve(result);
      });
    });
  });
}

class Conn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32LE(0)) {
        const len = this.buf.readUInt32LE(0);
        const f = { type: this.buf[4], id: this.buf.readBigUInt64LE(5), payload: this.buf.subarray(13, 4 + len) };
        this.buf = this.buf.subarray(4 + len);
        this.frames.push(f);
      }
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => {});
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(type, id, payload = Buffer.alloc(0)) {
    const b = Buffer.alloc(13 + payload.length);
    b.writeUInt32LE(9 + payload.length, 0);
    b[4] = type;
    b.writeBigUInt64LE(BigInt(id), 5);
    payload.copy(b, 13);
    this.sock.write(b);
  }

  sendJson(type, id, value) {
    this.send(type, id, Buffer.from(JSON.stringify(value)));
  }

  credit(id, n) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n, 0);
    this.send(T.CREDIT, id, b);
  }

  // The next frame matching `pred` (other frames stay queued), or null after `ms`.
  async next(pred = () => true, ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise((r) => {
        this.waiters.push(r);
        setTimeout(r, Math.max(1, deadline - Date.now()));
      });
    }
  }

  async hello(version = '1.2') {
    this.sendJson(T.HELLO, 0, { protocol: 'registry-storage-ipc', version });
    const f = await this.next();
    assert.ok(f, 'no WELCOME');
    assert.equal(f.type, T.WELCOME, `expected WELCOME, got ${f.type}: ${f.payload}`);
    return JSON.parse(f.payload);
  }

  // The raw text of request `id`'s whole response (RESPONSE_PART pieces included).
  async responseText(id) {
    const parts = [];
    for (;;) {
      const f = await this.next((x) => x.id === BigInt(id) && (x.type === T.RESPONSE || x.type === T.RESPONSE_PART));
      assert.ok(f, `no response to request ${id}`);
      parts.push(f.payload);
      if (f.type === T.RESPONSE) return { text: Buffer.concat(parts).toString('utf8'), parts: parts.length };
    }
  }

  async call(id, req) {
    this.sendJson(T.REQUEST, id, req);
    return JSON.parse((await this.responseText(id)).text);
  }

  // Reads the stream on `id`, granting `grant` bytes at a time, until END.
  async readStream(id, grant = 64 * 1024) {
    const out = [];
    let window = 0;
    for (;;) {
      if (window === 0) {
        this.credit(id, grant);
        window = grant;
      }
      const f = await this.next((x) => x.id === BigInt(id) && [T.DATA, T.END, T.RESET].includes(x.type));
      assert.ok(f, `stream ${id} stalled`);
      if (f.type === T.END) return Buffer.concat(out);
      assert.equal(f.type, T.DATA, `stream ${id} was reset: ${f.payload}`);
      assert.ok(f.payload.length <= window, 'the server sent beyond the window');
      window -= f.payload.length;
      out.push(f.payload);
    }
  }

  // put_content under 1.1 flow control: 64 KiB at first, then as CREDIT comes.
  async put(id, p, content) {
    this.sendJson(T.REQUEST, id, { op: 'put_content', path: p });
    let window = 64 * 1024;
    let off = 0;
    while (off < content.length) {
      if (window === 0) {
        const c = await this.next((x) => x.id === BigInt(id) && x.type === T.CREDIT);
        assert.ok(c, 'no CREDIT for put_content');
        window += c.payload.readUInt32LE(0);
        continue;
      }
      const n = Math.min(window, 1024 * 1024, content.length - off);
      this.send(T.DATA, id, content.subarray(off, off + n));
      off += n;
      window -= n;
    }
    this.send(T.END, id);
    return JSON.parse((await this.responseText(id)).text);
  }

  close() {
    this.sock.end();
  }
}

async function connected(root, version = '1.2') {
  const d = await start({ rootdirectory: root });
  assert.ok(d.conn, `the driver did not connect: ${d.stderr}`);
  d.welcome = await d.conn.hello(version);
  return d;
}

test('invalid parameters: a message naming the key, a non-zero exit, no connection', async () => {
  const cases = [
    [{ rootdirectory: tempDir(), colour: 'blue' }, 'colour'],
    [{ rootdirectory: 'relative/dir' }, 'rootdirectory'],
    [{}, 'rootdirectory'],
    [{ rootdirectory: null }, 'rootdirectory'],
    [{ rootdirectory: 7 }, 'rootdirectory'],
  ];
  for (const [params, key] of cases) {
    const d = await start(params);
    const code = await d.exited;
    assert.equal(d.conn, null, `connected with ${JSON.stringify(params)}`);
    assert.notEqual(code, 0);
    assert.match(d.stderr, new RegExp(key), d.stderr);
  }
  // Both places at once is an error too; argument 1 alone works.
  const both = await start({ rootdirectory: tempDir() }, { inArg: true, env: { REGISTRY_STORAGE_IPC_PARAMETERS: '{}' } });
  assert.notEqual(await both.exited, 0);
  assert.equal(both.conn, null);
  const arg = await start({ rootdirectory: tempDir() }, { inArg: true });
  assert.ok(arg.conn, arg.stderr);
  await arg.conn.hello();
  arg.conn.close();
  assert.equal(await arg.exited, 0);
});

test('handshake: WELCOME 1.2, another major is FATAL, EOF exits 0', async () => {
  const d = await connected(tempDir());
  assert.equal(d.welcome.version, '1.2');
  assert.equal(d.welcome.driver, 'jsdir');
  assert.deepEqual(Object.keys(d.welcome.capabilities).sort(),
    ['append_to_committed', 'detects_file_dir_conflicts', 'persistent', 'url_for']);
  const pong = (d.conn.send(T.PING, 77), await d.conn.next((f) => f.type === T.PONG));
  assert.equal(pong.id, 77n);
  d.conn.close();
  assert.equal(await d.exited, 0);

  const v2 = await start({ rootdirectory: tempDir() });
  v2.conn.sendJson(T.HELLO, 0, { protocol: 'registry-storage-ipc', version: '2.0' });
  const fatal = await v2.conn.next();
  assert.equal(fatal.type, T.FATAL);
  assert.match(JSON.parse(fatal.payload).message, /2\.0.*1\.2/);
  assert.notEqual(await v2.exited, 0);
});

test('FILEINFO: mod_time_s and mod_time_nanos under 1.2, an exact mod_time_ns under 1.1', async () => {
  const root = tempDir();
  fs.writeFileSync(path.join(root, 'f'), 'hello');
  const ns = fs.statSync(path.join(root, 'f'), { bigint: true }).mtimeNs;
  const d12 = await connected(root, '1.2');
  const r12 = await d12.conn.call(1, { op: 'stat', path: '/f' });
  assert.equal(r12.ok.size, 5);
  assert.equal(BigInt(r12.ok.mod_time_s) * 1000000000n + BigInt(r12.ok.mod_time_nanos), ns);
  assert.equal(r12.ok.mod_time_ns, undefined);
  d12.conn.close();
  const d11 = await connected(root, '1.1');
  d11.conn.sendJson(T.REQUEST, 1, { op: 'stat', path: '/f' });
  const { text } = await d11.conn.responseText(1);
  const m = /"mod_time_ns":(-?\d+)/.exec(text);
  assert.ok(m, text);
  assert.equal(m[1], ns.toString(), 'mod_time_ns is exact');
  assert.equal(JSON.parse(text).ok.mod_time_s, undefined);
  d11.conn.close();
});

test('1.1 flow control: server streams wait for credit, put_content gets credit as consumed', async () => {
  const d = await connected(tempDir());
  const content = crypto.randomBytes(300 * 1024 + 7);
  assert.deepEqual(await d.conn.put(1, '/big/blob', content), { ok: null });
  // A reader sends nothing before the client's first CREDIT; PING is answered meanwhile.
  d.conn.sendJson(T.REQUEST, 2, { op: 'reader', path: '/big/blob', offset: 1000 });
  assert.deepEqual(JSON.parse((await d.conn.responseText(2)).text), { ok: null });
  assert.equal(await d.conn.next((f) => f.id === 2n && f.type === T.DATA, 300), null, 'DATA before any credit');
  d.conn.send(T.PING, 2);
  assert.ok(await d.conn.next((f) => f.type === T.PONG));
  const got = await d.conn.readStream(2, 10000);
  assert.ok(got.equals(content.subarray(1000)));
  // get_content: the CREDIT right behind the request, then exactly the announced size.
  d.conn.sendJson(T.REQUEST, 3, { op: 'get_content', path: '/big/blob' });
  const r = JSON.parse((await d.conn.responseText(3)).text);
  assert.equal(r.ok.size, content.length);
  assert.ok((await d.conn.readStream(3)).equals(content));
  d.conn.close();
});

test('1.0 client: 4 MiB windows from the start, mod_time_ns', async () => {
  const d = await connected(tempDir(), '1.0');
  const content = crypto.randomBytes(3 * 1024 * 1024);
  d.conn.sendJson(T.REQUEST, 1, { op: 'put_content', path: '/old/client' });
  for (let off = 0; off < content.length; off += 1024 * 1024) {
    d.conn.send(T.DATA, 1, content.subarray(off, off + 1024 * 1024));
  }
  d.conn.send(T.END, 1);
  assert.deepEqual(JSON.parse((await d.conn.responseText(1)).text), { ok: null });
  d.conn.sendJson(T.REQUEST, 2, { op: 'reader', path: '/old/client', offset: 0 });
  assert.deepEqual(JSON.parse((await d.conn.responseText(2)).text), { ok: null });
  const got = [];
  for (;;) {
    const f = await d.conn.next((x) => x.id === 2n && (x.type === T.DATA || x.type === T.END));
    assert.ok(f, 'a 1.0 reader stream waits for no CREDIT');
    if (f.type === T.END) break;
    got.push(f.payload);
  }
  assert.ok(Buffer.concat(got).equals(content));
  d.conn.sendJson(T.REQUEST, 3, { op: 'stat', path: '/old/client' });
  assert.match((await d.conn.responseText(3)).text, /"mod_time_ns":\d{19},/);
  d.conn.close();
});

test('writers: resumable across processes, published by rename on commit', async () => {
  const root = tempDir();
  const a = crypto.randomBytes(100 * 1024);
  const b = crypto.randomBytes(5000);
  const d1 = await connected(root);
  const w = await d1.conn.call(1, { op: 'writer', path: '/up/load', append: false });
  assert.deepEqual(w, { ok: { size: 0 } });
  d1.conn.send(T.DATA, 1, a.subarray(0, 64 * 1024));
  const c = await d1.conn.next((f) => f.id === 1n && f.type === T.CREDIT);
  assert.ok(c, 'no CREDIT on the writer handle');
  d1.conn.send(T.DATA, 1, a.subarray(64 * 1024));
  assert.deepEqual(await d1.conn.call(2, { op: 'writer_close', handle: 1 }), { ok: null });
  assert.equal((await d1.conn.call(3, { op: 'stat', path: '/up/load' })).error.kind, 'path_not_found');
  d1.conn.close();
  assert.equal(await d1.exited, 0);

  const d2 = await connected(root);
  assert.deepEqual(await d2.conn.call(1, { op: 'writer', path: '/up/load', append: true }), { ok: { size: a.length } });
  d2.conn.send(T.DATA, 1, b);
  assert.deepEqual(await d2.conn.call(2, { op: 'writer_commit', handle: 1 }), { ok: null });
  assert.ok(fs.readFileSync(path.join(root, 'up', 'load')).equals(Buffer.concat([a, b])));
  const again = await d2.conn.call(3, { op: 'writer_commit', handle: 1 });
  assert.ok(again.error, 'a finished handle answers an error');
  assert.deepEqual(await d2.conn.call(4, { op: 'list', path: '/up' }), { ok: ['/up/load'] });
  d2.conn.close();
});

test('a list longer than 1 MiB comes in RESPONSE_PART pieces', async () => {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'many'));
  const names = [];
  for (let i = 0; i < 4200; i++) {
    const name = `${String(i).padStart(5, '0')}-${'x'.repeat(244)}`;
    names.push(`/many/${name}`);
    fs.writeFileSync(path.join(root, 'many', name), '');
  }
  const d = await connected(root);
  d.conn.sendJson(T.REQUEST, 1, { op: 'list', path: '/many' });
  const { text, parts } = await d.conn.responseText(1);
  assert.ok(parts >= 2, `${parts} frame(s)`);
  assert.deepEqual(JSON.parse(text).ok, names);
  d.conn.close();
});

test('walk: depth first, skip and start_after', async () => {
  const root = tempDir();
  const d = await connected(root);
  for (const p of ['/w/a/b', '/w/a/c', '/w/a-b', '/w/b/x/y', '/w/c']) {
    assert.deepEqual(await d.conn.put(p.length, p, Buffer.from(p)), { ok: null });
  }
  async function walk(id, req, answer = () => 0) {
    d.conn.sendJson(T.REQUEST, id, { op: 'walk', ...req });
    const seen = [];
    for (;;) {
      const f = await d.conn.next((x) => x.id === BigInt(id) && (x.type === T.WALK_ENTRY || x.type === T.RESPONSE));
      assert.ok(f, 'the walk stalled');
      if (f.type === T.RESPONSE) return { seen, result: JSON.parse(f.payload) };
      const info = JSON.parse(f.payload);
      seen.push(info.path + (info.is_dir ? '/' : ''));
      d.conn.send(T.WALK_CONTROL, id, Buffer.from([answer(info)]));
    }
  }
  const all = await walk(100, { path: '/w', start_after: null });
  assert.deepEqual(all.seen, ['/w/a/', '/w/a/b', '/w/a/c', '/w/a-b', '/w/b/', '/w/b/x/', '/w/b/x/y', '/w/c']);
  assert.deepEqual(all.result, { ok: null });
  const skipped = await walk(101, { path: '/w', start_after: null }, (i) => (i.path === '/w/a' || i.path === '/w/b/x/y' ? 1 : 0));
  assert.deepEqual(skipped.seen, ['/w/a/', '/w/a-b', '/w/b/', '/w/b/x/', '/w/b/x/y', '/w/c']);
  const after = await walk(102, { path: '/w', start_after: '/w/a/b' });
  assert.deepEqual(after.seen, ['/w/a/c', '/w/a-b', '/w/b/', '/w/b/x/', '/w/b/x/y', '/w/c']);
  const stopped = await walk(103, { path: '/w', start_after: null }, () => 2);
  assert.deepEqual(stopped.seen, ['/w/a/']);
  assert.equal((await d.conn.call(104, { op: 'walk', path: '/w/c', start_after: null })).error.kind, 'path_not_found');
  d.conn.close();
});

test('errors: invalid paths, malformed requests, a protocol error is FATAL', async () => {
  const d = await connected(tempDir());
  const bad = await d.conn.call(1, { op: 'stat', path: '/a//b' });
  assert.equal(bad.error.kind, 'invalid_path');
  assert.equal(bad.error.driver, 'jsdir');
  const unknown = await d.conn.call(2, { op: 'frobnicate' });
  assert.deepEqual([unknown.error.kind, unknown.error.operation, unknown.error.path], ['backend', 'frobnicate', null]);
  const missing = await d.conn.call(3, { op: 'reader', path: '/x', offset: 2 ** 53 });
  assert.equal(missing.error.kind, 'backend');
  assert.equal((await d.conn.call(4, [1, 2])).error.operation, 'request');
  d.conn.send(T.DATA, 99, Buffer.from('no such stream'));
  const fatal = await d.conn.next((f) => f.type === T.FATAL);
  assert.ok(fatal, 'no FATAL');
  assert.notEqual(await d.exited, 0);
});

test('RESET: a put stores nothing, a writer reset before its ok never opens, a walk ends', async () => {
  const root = tempDir();
  const d = await connected(root);
  d.conn.sendJson(T.REQUEST, 1, { op: 'put_content', path: '/r/put' });
  d.conn.send(T.DATA, 1, Buffer.alloc(1000, 1));
  d.conn.send(T.RESET, 1);
  assert.ok(JSON.parse((await d.conn.responseText(1)).text).error, 'a reset put answers an error');
  assert.equal((await d.conn.call(2, { op: 'stat', path: '/r/put' })).error.kind, 'path_not_found');
  assert.deepEqual(fs.readdirSync(path.join(root, '#tmp')), [], 'no temporary file left');

  d.conn.sendJson(T.REQUEST, 3, { op: 'writer', path: '/r/w', append: false });
  d.conn.send(T.RESET, 3);
  assert.deepEqual(JSON.parse((await d.conn.responseText(3)).text), { ok: { size: 0 } });
  assert.ok((await d.conn.call(4, { op: 'writer_commit', handle: 3 })).error);

  for (const p of ['/r/a/1', '/r/a/2']) assert.deepEqual(await d.conn.put(10 + Number(p.slice(-1)), p, Buffer.from('x')), { ok: null });
  d.conn.sendJson(T.REQUEST, 20, { op: 'walk', path: '/r', start_after: null });
  assert.ok(await d.conn.next((f) => f.id === 20n && f.type === T.WALK_ENTRY));
  d.conn.send(T.RESET, 20);
  assert.ok(await d.conn.next((f) => f.id === 20n && f.type === T.RESPONSE));
  d.conn.send(T.WALK_CONTROL, 20, Buffer.from([0])); // late: ignored
  d.conn.send(T.PING, 0);
  assert.ok(await d.conn.next((f) => f.type === T.PONG));

  // DATA on a writer's id before its ok is a protocol error.
  d.conn.sendJson(T.REQUEST, 30, { op: 'writer', path: '/r/early', append: false });
  d.conn.send(T.DATA, 30, Buffer.from('too early'));
  assert.ok(await d.conn.next((f) => f.type === T.FATAL));
  assert.equal(await d.exited, 1);
});
