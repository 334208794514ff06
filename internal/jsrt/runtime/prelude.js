// The web APIs of Moat's JavaScript runtime, on the Go natives of
// __moat_native. Evaluated once at deploy, before the function's script.
"use strict";
(function (g) {
  const N = g.__moat_native;
  delete g.__moat_native;

  const toBytes = (b) => {
    if (b === undefined || b === null) return new Uint8Array(0);
    if (typeof b === "string") return new Uint8Array(N.encode(b));
    if (b instanceof ArrayBuffer) return new Uint8Array(b.slice(0));
    if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    if (b instanceof URLSearchParams) return new Uint8Array(N.encode(b.toString()));
    if (b instanceof Blob) return b._b.slice();
    throw new TypeError("a body must be a string, an ArrayBuffer, a typed array or URLSearchParams");
  };

  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(s = "") { return new Uint8Array(N.encode(String(s))); }
  }
  class TextDecoder {
    constructor(label = "utf-8", opts = {}) {
      if (label !== "utf-8" && !/^utf-?8$/i.test(label)) throw new RangeError("TextDecoder: only utf-8");
      this.fatal = !!opts.fatal;
    }
    get encoding() { return "utf-8"; }
    decode(b) {
      if (b === undefined) return "";
      return N.decode(b instanceof ArrayBuffer ? b : toBytes(b).buffer, this.fatal);
    }
  }

  // Header names are tokens (RFC 9110), values have no NUL or line break:
  // checked in Go (this runs for every header of every request).
  const normName = (n) => N.headerName(String(n));
  const normValue = (v) => N.headerValue(String(v));
  class Headers {
    constructor(init) {
      this._h = [];
      if (init instanceof Headers) {
        this._h = init._h.map((p) => [p[0], p[1]]);
      } else if (init && typeof init[Symbol.iterator] === "function") {
        for (const [k, v] of init) this.append(k, v);
      } else if (init) {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      }
    }
    append(k, v) { this._h.push([normName(k), normValue(v)]); }
    set(k, v) { k = normName(k); this.delete(k); this._h.push([k, normValue(v)]); }
    delete(k) { k = normName(k); this._h = this._h.filter((p) => p[0] !== k); }
    get(k) {
      k = normName(k);
      const h = this._h;
      let v = null;
      for (let i = 0; i < h.length; i++) {
        if (h[i][0] === k) v = v === null ? h[i][1] : v + ", " + h[i][1];
      }
      return v;
    }
    has(k) {
      k = normName(k);
      const h = this._h;
      for (let i = 0; i < h.length; i++) if (h[i][0] === k) return true;
      return false;
    }
    forEach(f, self) { for (const [k, v] of this.entries()) f.call(self, v, k, this); }
    *entries() {
      const names = [...new Set(this._h.map((p) => p[0]))].sort();
      for (const n of names) yield [n, this.get(n)];
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
  }

  class URLSearchParams {
    constructor(init = "") {
      this._p = [];
      if (typeof init === "string") {
        this._p = init === "" || init === "?" ? [] : N.parseQuery(init);
      } else if (init && typeof init[Symbol.iterator] === "function") {
        for (const [k, v] of init) this._p.push([String(k), String(v)]);
      } else if (init) {
        for (const k of Object.keys(init)) this._p.push([k, String(init[k])]);
      }
    }
    append(k, v) { this._p.push([String(k), String(v)]); }
    set(k, v) { this.delete(k); this.append(k, v); }
    delete(k) { this._p = this._p.filter((p) => p[0] !== String(k)); }
    get(k) { const p = this._p.find((p) => p[0] === String(k)); return p ? p[1] : null; }
    getAll(k) { return this._p.filter((p) => p[0] === String(k)).map((p) => p[1]); }
    has(k) { return this._p.some((p) => p[0] === String(k)); }
    forEach(f, self) { for (const [k, v] of this._p) f.call(self, v, k, this); }
    *entries() { yield* this._p.map((p) => [p[0], p[1]]); }
    *keys() { for (const [k] of this._p) yield k; }
    *values() { for (const [, v] of this._p) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() {
      const enc = (s) => encodeURIComponent(s).replace(/%20/g, "+");
      return this._p.map(([k, v]) => enc(k) + "=" + enc(v)).join("&");
    }
  }

  class URL {
    constructor(url, base) {
      const u = N.parseURL(String(url), base === undefined ? undefined : String(base));
      this.protocol = u[0]; this.username = u[1]; this.password = u[2]; this.hostname = u[3];
      this.port = u[4]; this.pathname = u[5]; this.search = u[6]; this.hash = u[7];
      this.searchParams = new URLSearchParams(u[6]);
    }
    get host() { return this.hostname + (this.port ? ":" + this.port : ""); }
    get origin() { return this.protocol + "//" + this.host; }
    get href() {
      const q = this.searchParams.toString();
      const auth = this.username ? this.username + (this.password ? ":" + this.password : "") + "@" : "";
      return this.protocol + "//" + auth + this.host + this.pathname + (q ? "?" + q : "") + this.hash;
    }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }

  // Blob and File: bytes with a type, read whole (no streams).
  class Blob {
    constructor(parts = [], opts = {}) {
      const chunks = [];
      let n = 0;
      for (const p of parts) {
        const c = p instanceof Blob ? p._b : toBytes(p);
        chunks.push(c);
        n += c.byteLength;
      }
      this._b = new Uint8Array(n);
      let at = 0;
      for (const c of chunks) { this._b.set(c, at); at += c.byteLength; }
      const t = String(opts.type || "");
      this.type = /^[\x20-\x7e]*$/.test(t) ? t.toLowerCase() : "";
    }
    get size() { return this._b.byteLength; }
    text() { return Promise.resolve(N.decode(this._b, false)); }
    arrayBuffer() { return Promise.resolve(this._b.slice().buffer); }
    bytes() { return Promise.resolve(this._b.slice()); }
    slice(start = 0, end = this.size, type = "") {
      const b = new Blob([], { type });
      b._b = this._b.slice(start, end);
      return b;
    }
  }
  class File extends Blob {
    constructor(parts, name, opts = {}) {
      super(parts, opts);
      this.name = String(name);
      this.lastModified = opts.lastModified === undefined ? Date.now() : Number(opts.lastModified);
    }
  }

  // FormData: what a form posts, read with request.formData() from
  // application/x-www-form-urlencoded or multipart/form-data.
  const formValue = (v, filename) => {
    if (v instanceof Blob) return v instanceof File && filename === undefined ? v : new File([v], filename === undefined ? "blob" : filename, { type: v.type });
    return String(v);
  };
  class FormData {
    constructor() { this._e = []; }
    append(k, v, filename) { this._e.push([String(k), formValue(v, filename)]); }
    set(k, v, filename) { k = String(k); this.delete(k); this.append(k, v, filename); }
    delete(k) { k = String(k); this._e = this._e.filter((p) => p[0] !== k); }
    get(k) { k = String(k); const p = this._e.find((p) => p[0] === k); return p ? p[1] : null; }
    getAll(k) { k = String(k); return this._e.filter((p) => p[0] === k).map((p) => p[1]); }
    has(k) { k = String(k); return this._e.some((p) => p[0] === k); }
    forEach(f, self) { for (const [k, v] of this._e) f.call(self, v, k, this); }
    *entries() { yield* this._e.map((p) => [p[0], p[1]]); }
    *keys() { for (const [k] of this._e) yield k; }
    *values() { for (const [, v] of this._e) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    // _encode writes it as multipart/form-data.
    _encode() {
      const boundary = "----moat" + N.uuid().replace(/-/g, "");
      const q = (s) => s.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
      const parts = [];
      for (const [k, v] of this._e) {
        let head = "--" + boundary + '\r\ncontent-disposition: form-data; name="' + q(k) + '"';
        if (v instanceof File) head += '; filename="' + q(v.name) + '"\r\ncontent-type: ' + (v.type || "application/octet-stream");
        parts.push(head + "\r\n\r\n", v instanceof Blob ? v : String(v), "\r\n");
      }
      parts.push("--" + boundary + "--\r\n");
      return { bytes: new Blob(parts)._b, type: "multipart/form-data; boundary=" + boundary };
    }
  }

  // typed is a body's bytes and the content type it implies (a FormData's
  // boundary, a Blob's type; "" for the rest).
  const typed = (b) => {
    if (b instanceof FormData) return b._encode();
    if (b instanceof Blob) return { bytes: b._b.slice(), type: b.type };
    return { bytes: toBytes(b), type: "" };
  };

  // AbortController: a signal a caller can check and listen to. Host calls
  // are synchronous, so fetch honours a signal already aborted.
  class AbortSignal {
    constructor() { this.aborted = false; this.reason = undefined; this.onabort = null; this._l = []; }
    addEventListener(type, f) { if (type === "abort" && typeof f === "function") this._l.push(f); }
    removeEventListener(type, f) { this._l = this._l.filter((g) => g !== f); }
    throwIfAborted() { if (this.aborted) throw this.reason; }
    _abort(reason) {
      if (this.aborted) return;
      this.aborted = true;
      this.reason = reason === undefined ? Object.assign(new Error("the operation was aborted"), { name: "AbortError" }) : reason;
      const ev = { type: "abort", target: this };
      if (typeof this.onabort === "function") this.onabort(ev);
      for (const f of this._l) f(ev);
    }
    static abort(reason) { const s = new AbortSignal(); s._abort(reason); return s; }
    static timeout(ms) {
      const s = new AbortSignal();
      setTimeout(() => s._abort(Object.assign(new Error("the operation timed out"), { name: "TimeoutError" })), ms);
      return s;
    }
  }
  class AbortController {
    constructor() { this.signal = new AbortSignal(); }
    abort(reason) { this.signal._abort(reason); }
  }

  // A body is kept as it came: a string stays a string until something
  // asks for its bytes (text() and json() of a string body, and the
  // runtime writing it, never encode it).
  class Body {
    _init(body) {
      if (body === undefined || body === null) { this._text = null; this._bytes = null; }
      else if (typeof body === "string") { this._text = body; this._bytes = undefined; }
      else {
        const t = typed(body);
        if (t.type && this.headers && !this.headers.has("content-type")) this.headers._h.push(["content-type", t.type]);
        this._text = null; this._bytes = t.bytes;
      }
      this.bodyUsed = false;
    }
    get _body() {
      if (this._bytes === undefined) this._bytes = new Uint8Array(N.encode(this._text));
      return this._bytes;
    }
    set _body(b) { this._bytes = b; this._text = null; }
    // _raw is the body as it is held: a string, bytes or null.
    get _raw() { return this._bytes === undefined ? this._text : this._bytes; }
    _use() {
      if (this.bodyUsed) throw new TypeError("the body has been read already");
      this.bodyUsed = true;
    }
    _take() { this._use(); return this._body || new Uint8Array(0); }
    _takeText() {
      this._use();
      if (this._bytes === undefined) return this._text;
      return this._bytes === null ? "" : N.decode(this._bytes, false);
    }
    get body() { return this._body; }
    // Not async functions: a settled promise made directly costs the
    // engine less than an async function's machinery.
    arrayBuffer() {
      try { const b = this._take(); return Promise.resolve(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); } catch (e) { return Promise.reject(e); }
    }
    text() {
      try { return Promise.resolve(this._takeText()); } catch (e) { return Promise.reject(e); }
    }
    json() {
      try { return Promise.resolve(JSON.parse(this._takeText())); } catch (e) { return Promise.reject(e); }
    }
    blob() {
      try { const b = new Blob([], { type: this.headers.get("content-type") || "" }); b._b = this._take().slice(); return Promise.resolve(b); } catch (e) { return Promise.reject(e); }
    }
    formData() {
      try {
        const type = (this.headers.get("content-type") || "").toLowerCase();
        const fd = new FormData();
        if (type.startsWith("application/x-www-form-urlencoded")) {
          for (const [k, v] of N.parseQuery(this._takeText())) fd.append(k, v);
        } else if (type.startsWith("multipart/form-data")) {
          for (const [name, filename, ctype, value] of N.multipart(this._take(), this.headers.get("content-type"))) {
            if (filename === null) fd.append(name, N.decode(value, false));
            else fd.append(name, new File([value], filename, { type: ctype }));
          }
        } else {
          throw new TypeError("formData: the body is neither application/x-www-form-urlencoded nor multipart/form-data");
        }
        return Promise.resolve(fd);
      } catch (e) {
        return Promise.reject(e);
      }
    }
  }

  class Request extends Body {
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      this.url = from ? from.url : new URL(String(input)).href;
      this.method = String(init.method || (from && from.method) || "GET").toUpperCase();
      this.headers = new Headers(init.headers || (from && from.headers) || undefined);
      const body = init.body !== undefined ? init.body : from ? from._raw : null;
      if (body !== null && body !== undefined && (this.method === "GET" || this.method === "HEAD")) {
        throw new TypeError("a GET or HEAD request has no body");
      }
      this._init(body);
    }
    clone() { return new Request(this); }
  }
  // The request the node hands the function: its URL, method and headers
  // came checked from the gateway, so they are set as they are.
  const hostRequest = (url, method, pairs, body) => {
    const r = Object.create(Request.prototype);
    r.url = url;
    r.method = method;
    const h = Object.create(Headers.prototype);
    h._h = pairs;
    r.headers = h;
    if (typeof body === "string") { r._text = body; r._bytes = undefined; }
    else { r._text = null; r._bytes = body === undefined || body === null ? null : new Uint8Array(body); }
    r.bodyUsed = false;
    return r;
  };

  class Response extends Body {
    constructor(body = null, init = {}) {
      super();
      this.status = init.status === undefined ? 200 : Number(init.status) | 0;
      if (this.status < 200 || this.status > 599) throw new RangeError("a Response's status must be 200 to 599");
      this.statusText = String(init.statusText || "");
      this.headers = new Headers(init.headers);
      if (typeof body === "string" && !this.headers.has("content-type")) this.headers._h.push(["content-type", "text/plain;charset=UTF-8"]);
      else if (body instanceof URLSearchParams && !this.headers.has("content-type")) this.headers._h.push(["content-type", "application/x-www-form-urlencoded;charset=UTF-8"]);
      this._init(body);
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    static json(data, init = {}) {
      const body = JSON.stringify(data);
      if (body === undefined) throw new TypeError("Response.json: the data is not JSON");
      const headers = init.headers === undefined ? [] : new Headers(init.headers)._h;
      let typed = false;
      for (let i = 0; i < headers.length; i++) if (headers[i][0] === "content-type") typed = true;
      if (!typed) headers.push(["content-type", "application/json"]);
      const r = new Response(body, { status: init.status, statusText: init.statusText });
      r.headers._h = headers;
      return r;
    }
    static redirect(url, status = 302) {
      return new Response(null, { status, headers: { location: new URL(String(url)).href } });
    }
  }

  const crypto = {
    getRandomValues(a) {
      if (!ArrayBuffer.isView(a) || a instanceof Float32Array || a instanceof Float64Array) throw new TypeError("getRandomValues takes an integer typed array");
      const r = new Uint8Array(N.random(a.byteLength));
      new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(r);
      return a;
    },
    randomUUID() { return N.uuid(); },
  };

  const fmt = (args) => args.map((a) => {
    if (typeof a === "string") return a;
    if (a instanceof Error) return a.stack || String(a);
    try { return JSON.stringify(a); } catch (e) { return String(a); }
  }).join(" ");
  const console = {};
  for (const level of ["log", "info", "warn", "error", "debug"]) {
    console[level] = (...args) => N.log((level === "log" ? "" : level.toUpperCase() + " ") + fmt(args));
  }

  // env: the function's capabilities, each a host call the node checks
  // against the manifest's grants. A refusal is a rejected promise.
  const call = (r) => (r.ok ? Promise.resolve(r.value) : Promise.reject(Object.assign(new Error(r.error), { code: r.code })));
  const bucket = (name) => Object.freeze({
    get: (key, type = "text") => {
      const r = N.kvGet(name, String(key));
      if (r.code === "not found") return Promise.resolve(null);
      return call(r).then((v) => (type === "arrayBuffer" ? v.value : type === "json" ? JSON.parse(new TextDecoder().decode(v.value)) : new TextDecoder().decode(v.value)));
    },
    put: (key, value) => call(N.kvPut(name, String(key), typeof value === "string" ? value : toBytes(value).buffer)).then(() => undefined),
    delete: (key) => call(N.kvDelete(name, String(key))).then(() => undefined),
    list: (prefix = "") => call(N.kvKeys(name, String(prefix))).then((keys) => ({ keys: (keys || []).map((k) => ({ name: k })) })),
  });
  const KV = new Proxy({}, {
    get: (_, name) => (typeof name === "string" ? bucket(name) : undefined),
  });
  // env.objects.NAME: an object bucket (permissions.objects). An object is
  // its description and its whole content in memory.
  const described = (v) => ({ name: v.name, size: v.size, digest: v.digest, contentType: v.contentType, modified: new Date(v.modified) });
  const objectOf = (v) => Object.assign(described(v), {
    arrayBuffer: () => Promise.resolve(v.value),
    text: () => Promise.resolve(new TextDecoder().decode(v.value)),
    json: () => Promise.resolve(JSON.parse(new TextDecoder().decode(v.value))),
  });
  const absent = (r) => (r.code === "not found" ? Promise.resolve(null) : null);
  const objectBucket = (name) => Object.freeze({
    get: (key) => { const r = N.objGet(name, String(key)); return absent(r) || call(r).then(objectOf); },
    head: (key) => { const r = N.objHead(name, String(key)); return absent(r) || call(r).then(described); },
    put: (key, value, opts = {}) => {
      try {
        const t = typed(value);
        return call(N.objPut(name, String(key), String(opts.contentType || t.type || ""), t.bytes.buffer)).then(described);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    delete: (key) => call(N.objDelete(name, String(key))).then(() => undefined),
    list: (prefix = "") => call(N.objList(name, String(prefix))).then((vs) => ({ objects: (vs || []).map(described) })),
  });
  const objects = new Proxy({}, {
    get: (_, name) => (typeof name === "string" ? objectBucket(name) : undefined),
  });
  const pairsOf = (h) => new Headers(h)._h.map((p) => [p[0], p[1]]);
  const responseOf = (v) => {
    const r = new Response(v.status === 204 || v.status === 304 ? null : v.body, { status: v.status < 200 ? 502 : v.status });
    r.headers._h = v.headers;
    return r;
  };
  // bodyOf is the body of an outgoing call (fetch, env.call) as an
  // ArrayBuffer, adding to headers the content type a FormData or Blob
  // implies when they name none.
  const bodyOf = (init, from, headers) => {
    const b = init.body !== undefined ? init.body : from ? from._raw : null;
    if (b === null || b === undefined) return null;
    const t = typed(b);
    if (t.type && !headers.some((p) => p[0] === "content-type")) headers.push(["content-type", t.type]);
    return t.bytes.buffer;
  };
  // fetch reaches only what the manifest's egress grant names; the host
  // checks the URL, verifies TLS and follows redirects itself.
  const fetch = (input, init = {}) => {
    try {
      const from = input instanceof Request ? input : null;
      const url = from ? from.url : new URL(String(input)).href;
      const method = String(init.method || (from && from.method) || "GET").toUpperCase();
      const signal = init.signal || (from && from.signal);
      if (signal && signal.aborted) return Promise.reject(signal.reason);
      const headers = pairsOf(init.headers || (from && from.headers) || undefined);
      return call(N.httpDo(method, url, headers, bodyOf(init, from, headers))).then(responseOf);
    } catch (e) {
      return Promise.reject(e);
    }
  };
  const env = Object.freeze({
    KV,
    objects,
    secrets: Object.freeze({ get: (name) => call(N.secret(String(name))) }),
    // call another function the manifest may invoke: a path ("/x?y=1"),
    // or a Request whose path is taken.
    call: (name, input = "/", init = {}) => {
      try {
        const from = input instanceof Request ? input : null;
        let path = from ? new URL(from.url).pathname + new URL(from.url).search : String(input);
        if (!path.startsWith("/")) path = "/" + path;
        const method = String(init.method || (from && from.method) || "GET").toUpperCase();
        const headers = pairsOf(init.headers || (from && from.headers) || undefined);
        return call(N.invoke(String(name), method, path, headers, bodyOf(init, from, headers))).then(responseOf);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    // publish an event on a subject the manifest's publish grant covers;
    // the promise gives the event's id.
    publish: (subject, data, opts = {}) => {
      const json = typeof data !== "string" && !(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data);
      const bytes = json ? N.encode(JSON.stringify(data)) : toBytes(data).buffer;
      const ct = opts.contentType || (json ? "application/json" : typeof data === "string" ? "text/plain" : "application/octet-stream");
      return call(N.publish(String(subject), String(opts.type || ""), ct, bytes));
    },
  });

  // No code from strings: eval and the Function constructors (reached also
  // as the constructor of any function, async function or generator)
  // throw. A script is what was bundled and deployed, never text a
  // request brought (docs/javascript.md).
  const refuse = function () { throw new EvalError("code from strings is not allowed on Moat (eval, new Function)"); };
  for (const f of [function () {}, async function () {}, function* () {}]) {
    const proto = Object.getPrototypeOf(f);
    Object.defineProperty(proto, "constructor", { value: refuse, writable: false, configurable: false });
  }
  Object.defineProperty(g, "Function", { value: refuse, writable: false, configurable: false });
  Object.defineProperty(g, "eval", { value: refuse, writable: false, configurable: false });

  // Timers: the runtime runs them once the handler's promise is left
  // pending with nothing else to do, sleeping until the next is due, all
  // within the function's timeout. Those set while the module is evaluated
  // at deploy never fire (there is no request to run them in); those still
  // pending when the response is ready are dropped with the request.
  const timers = new Map();
  let timerSeq = 1;
  const addTimer = (fn, ms, args, repeat) => {
    if (typeof fn !== "function") throw new TypeError("a timer takes a function (code from strings is not allowed on Moat)");
    ms = Math.max(0, Number(ms) || 0);
    const id = timerSeq++;
    timers.set(id, { due: Date.now() + ms, ms: repeat ? Math.max(ms, 1) : ms, fn, args, repeat });
    return id;
  };
  const clearTimer = (id) => { timers.delete(id); };
  Object.assign(g, {
    setTimeout: (fn, ms, ...args) => addTimer(fn, ms, args, false),
    setInterval: (fn, ms, ...args) => addTimer(fn, ms, args, true),
    clearTimeout: clearTimer,
    clearInterval: clearTimer,
    queueMicrotask: (fn) => {
      if (typeof fn !== "function") throw new TypeError("queueMicrotask takes a function");
      Promise.resolve().then(fn);
    },
  });
  // The runtime's side: how long until the next timer (-1: none), and
  // run the ones due, earliest first.
  Object.defineProperty(g, "__moat_timers", { value: Object.freeze({
    next: () => {
      let due = Infinity;
      for (const t of timers.values()) if (t.due < due) due = t.due;
      return due === Infinity ? -1 : Math.max(0, due - Date.now());
    },
    run: () => {
      const now = Date.now();
      const ready = [];
      for (const [id, t] of timers) if (t.due <= now) ready.push([id, t]);
      ready.sort((a, b) => a[1].due - b[1].due || a[0] - b[0]);
      for (const [id, t] of ready) {
        if (!timers.has(id)) continue; // cleared by an earlier one
        if (t.repeat) t.due = now + t.ms;
        else timers.delete(id);
        t.fn(...t.args);
      }
    },
    reset: () => timers.clear(),
  }) });

  // self is the global object, as in Workers (libraries look for it before
  // falling back to Function("return this")).
  Object.assign(g, { self: g, fetch, TextEncoder, TextDecoder, Headers, URLSearchParams, URL, Request, Response, crypto, console,
    Blob, File, FormData, AbortController, AbortSignal,
    atob: (s) => N.atob(String(s)), btoa: (s) => N.btoa(String(s)) });
  Object.defineProperty(g, "__moat_env", { value: env });
  Object.defineProperty(g, "__moat_request", { value: hostRequest });
  // The answer as the runtime writes it: [status, [name, value, ...], body],
  // or null for anything that is not a Response.
  Object.defineProperty(g, "__moat_reply", { value: (r) => {
    if (!(r instanceof Response)) return null;
    const h = r.headers._h;
    const flat = [];
    for (let i = 0; i < h.length; i++) flat.push(String(h[i][0]), String(h[i][1]));
    return [r.status, flat, r._raw];
  } });
  // Warm: run the common paths once at deploy, so that what the engine
  // fills in lazily on first use is in the snapshot rather than filled in
  // again by every request.
  Object.defineProperty(g, "__moat_warm", { value: () => {
    const r = hostRequest("https://warm.example/a/b?x=1&y=two+words", "POST", [["content-type", "application/json"], ["x-warm", "1"]], N.encode("{\"a\":[1,2]}"));
    const u = new URL(r.url);
    u.searchParams.get("x"); u.searchParams.toString(); u.href;
    new URL("../c?d=1", r.url).toString();
    r.headers.get("content-type"); r.headers.has("x-warm"); [...r.headers];
    r.json().then((v) => v);
    const h = new Headers({ "Content-Type": "text/plain" }); h.set("X-A", "b"); h.append("x-a", "c"); h.get("x-a");
    Response.json({ a: 1, b: "two", c: [true, null] }, { status: 201, headers: { "x-b": "1" } }).text();
    new Response("text").arrayBuffer();
    new Response(new Uint8Array([1, 2])).headers.get("content-type");
    new TextDecoder().decode(new TextEncoder().encode("héllo"));
    new URLSearchParams("a=1&b=%20c").get("b");
    btoa("hi"); atob("aGk=");
  } });
})(globalThis);
