// Package host serves the capabilities a function reaches through host calls
// (docs/hostcalls.md): KV and object buckets, secrets, egress, calling other functions
// and structured logs. Everything is denied unless the function's manifest
// grants it; every refused call returns an error to the guest, which keeps
// running, and is counted and recorded in the audit trail.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/egress"
	"github.com/moatfn/moat/internal/kvstore"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/secrets"
)

// MaxDepth caps how deep functions may call functions.
const MaxDepth = 4

// Invoker runs another function for a host call, through the same pipeline
// as an outside request: the callee's auth (its callers list), schema,
// limits and budget apply.
type Invoker interface {
	Invoke(ctx context.Context, from *Invocation, function, method, target string, header http.Header, body []byte) (status int, h http.Header, respBody []byte, err error)
}

// auditLog keeps the audit trail.
type auditLog interface {
	Append(ctx context.Context, rec audit.Record, sync bool) error
}

// Config is what a Host needs. Any capability left nil is refused as
// unavailable.
type Config struct {
	KV      *kvstore.Store
	Objects *objstore.Store
	Secrets *secrets.Store
	Egress  *egress.Client
	Invoker Invoker
	Audit   auditLog
	// Denied counts a refused host call.
	Denied func(function, capability string)
	// EgressBytes meters what a function sent and received over egress.
	EgressBytes func(function string, n int64)
	Grants      *Grants
}

// Publisher keeps events for the functions whose triggers take them. It
// returns the event's id, or an error: a *sandbox.HostError is the guest's
// answer as it stands (no listener, a full store, an invalid event).
type Publisher interface {
	Publish(ctx context.Context, subject, typ, contentType string, data []byte, source, publisher string) (id string, err error)
}

// Host serves host calls. It is safe for concurrent use.
type Host struct {
	log    *slog.Logger
	cfg    Config
	events Publisher // nil: publishing is unavailable

	mu     sync.Mutex
	egress map[string][]egress.Prefix // parsed grants by function/version
}

// New returns a Host.
func New(log *slog.Logger, cfg Config) *Host {
	if cfg.Denied == nil {
		cfg.Denied = func(string, string) {}
	}
	if cfg.EgressBytes == nil {
		cfg.EgressBytes = func(string, int64) {}
	}
	return &Host{log: log.With("component", "host"), cfg: cfg, egress: map[string][]egress.Prefix{}}
}

// SetEvents makes p take the events functions publish. Call it before
// serving.
func (h *Host) SetEvents(p Publisher) { h.events = p }

// Invocation is the side of one invocation that host calls see.
type Invocation struct {
	Function, Version, ID string
	User                  string // REMOTE_USER of this invocation
	Source                string // the outside caller's address
	Perms                 *manifest.Permissions
	Depth                 int               // 0 for a call from outside
	Known                 map[string]string // secret values read up the call chain, by name

	mu   sync.Mutex
	read map[string]string // secret values read in this invocation
	objs objects           // objects open for reading or writing
}

// Secrets returns the secret values this invocation and its callers read.
func (inv *Invocation) Secrets() map[string]string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make(map[string]string, len(inv.Known)+len(inv.read))
	for k, v := range inv.Known {
		out[k] = v
	}
	for k, v := range inv.read {
		out[k] = v
	}
	return out
}

// minRedact is the shortest secret value that logs are scrubbed of: a
// shorter one would blank ordinary text.
const minRedact = 4

// Redact replaces, in lines, every secret value the invocation (or its
// callers) read with [redacted:NAME].
func (inv *Invocation) Redact(lines []string) []string {
	known := inv.Secrets()
	if len(known) == 0 {
		return lines
	}
	names := slices.Collect(func(yield func(string) bool) {
		for k := range known {
			if !yield(k) {
				return
			}
		}
	})
	// Longest values first, so a value containing another is replaced whole.
	slices.SortFunc(names, func(a, b string) int { return len(known[b]) - len(known[a]) })
	var pairs []string
	for _, n := range names {
		if len(known[n]) >= minRedact {
			pairs = append(pairs, known[n], "[redacted:"+n+"]")
		}
	}
	if len(pairs) == 0 {
		return lines
	}
	r := strings.NewReplacer(pairs...)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = r.Replace(l)
	}
	return out
}

// Serve returns the host call handler of inv.
func (h *Host) Serve(inv *Invocation) sandbox.HostFunc {
	return func(ctx context.Context, op uint32, req []byte) ([]byte, error) {
		return h.call(ctx, inv, op, req)
	}
}

// statusErr is a host call failure with its guest status.
func statusErr(status uint32, format string, args ...any) error {
	return &sandbox.HostError{Status: status, Message: fmt.Sprintf(format, args...)}
}

func invalid(err error) error { return statusErr(sandbox.StatusInvalid, "%v", err) }

func (h *Host) call(ctx context.Context, inv *Invocation, op uint32, req []byte) ([]byte, error) {
	d := &decoder{b: req}
	switch op {
	case opLog:
		return h.logLine(ctx, inv, d)
	case opKVGet, opKVPut, opKVCreate, opKVUpdate, opKVDelete, opKVKeys:
		return h.kv(ctx, inv, op, d)
	case opSecretGet:
		return h.secret(ctx, inv, d)
	case opHTTP:
		return h.http(ctx, inv, d)
	case opInvoke:
		return h.invoke(ctx, inv, d)
	case opPublish:
		return h.publish(ctx, inv, d)
	case opObjInfo, opObjList, opObjOpen, opObjRead, opObjCreate, opObjWrite, opObjCommit, opObjClose, opObjDelete:
		return h.objects(ctx, inv, op, d)
	}
	return nil, statusErr(sandbox.StatusInvalid, "unknown host call %d", op)
}

// deny records a refused call and returns the guest's error.
func (h *Host) deny(ctx context.Context, inv *Invocation, capability, resource, reason string) error {
	// A URL's path can hold a secret the function read (a webhook token).
	if r := inv.Redact([]string{resource, reason}); len(r) == 2 {
		resource, reason = r[0], r[1]
	}
	h.cfg.Denied(inv.Function, capability)
	h.log.WarnContext(ctx, "host call denied",
		slog.String("fn", inv.Function), slog.String("version", inv.Version),
		slog.String("capability", capability), slog.String("resource", resource),
		slog.String("invocation_id", inv.ID), slog.String("reason", reason))
	if h.cfg.Audit != nil {
		h.cfg.Audit.Append(ctx, audit.Record{
			Action: "deny", Target: inv.Function, Version: inv.Version, Outcome: audit.Refused,
			Actor: inv.User, Source: inv.Source, InvocationID: inv.ID, Reason: reason,
			Capability: capability, Resource: resource,
		}, false)
	}
	return statusErr(sandbox.StatusDenied, "%s %s: %s", capability, resource, reason)
}

func (h *Host) used(inv *Invocation, grant string) {
	if h.cfg.Grants != nil {
		h.cfg.Grants.Use(inv.Function, grant)
	}
}

var logLevels = []string{"DEBUG", "INFO", "WARN", "ERROR"}

const maxAttrs = 64

func (h *Host) logLine(ctx context.Context, inv *Invocation, d *decoder) ([]byte, error) {
	level, msg, attrs := d.uint(), d.string(), d.headers()
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	if level >= uint64(len(logLevels)) {
		return nil, statusErr(sandbox.StatusInvalid, "log level %d is not 0-3", level)
	}
	var b strings.Builder
	b.WriteString("level=")
	b.WriteString(logLevels[level])
	b.WriteString(" msg=")
	b.WriteString(logValue(msg))
	n := 0
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range attrs {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range attrs[k] {
			if n++; n > maxAttrs {
				break
			}
			b.WriteByte(' ')
			b.WriteString(logKey(k))
			b.WriteByte('=')
			b.WriteString(logValue(v))
		}
	}
	sandbox.Log(ctx, b.String())
	return nil, nil
}

// logValue quotes v when it would not read as one token.
func logValue(v string) string {
	if v == "" || !utf8.ValidString(v) || strings.ContainsAny(v, " \"=\\") || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(strings.ToValidUTF8(v, "\uFFFD"))
	}
	return v
}

func logKey(k string) string {
	k = strings.ToLower(k) // wire headers are canonicalised; keys read better lower-case
	if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == '=' || r == '"' || r >= 0x7f }) {
		return strconv.Quote(strings.ToValidUTF8(k, "\uFFFD"))
	}
	return k
}

func (h *Host) kv(ctx context.Context, inv *Invocation, op uint32, d *decoder) ([]byte, error) {
	bucket, key := d.string(), d.string()
	var value []byte
	var num uint64
	switch op {
	case opKVPut, opKVCreate, opKVUpdate:
		value, num = d.bytes(), d.uint()
	}
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	capability := map[uint32]string{opKVGet: "kv.get", opKVPut: "kv.put", opKVCreate: "kv.create", opKVUpdate: "kv.update", opKVDelete: "kv.delete", opKVKeys: "kv.keys"}[op]
	if !manifest.ValidName(bucket) {
		return nil, statusErr(sandbox.StatusInvalid, "%s: %q is not a bucket name", capability, truncate(bucket, 80))
	}
	access := inv.Perms.KV[bucket]
	need := map[uint32]string{opKVGet: "read", opKVKeys: "read", opKVPut: "write", opKVDelete: "write", opKVCreate: "read-write", opKVUpdate: "read-write"}[op]
	if err := h.allowed(ctx, inv, capability, "bucket", bucket, access, need); err != nil {
		return nil, err
	}
	if h.cfg.KV == nil {
		return nil, statusErr(sandbox.StatusUnavailable, "KV is not available on this node")
	}
	h.used(inv, "kv:"+bucket+":"+access)
	var e encoder
	var err error
	switch op {
	case opKVGet:
		var v []byte
		var rev uint64
		v, rev, err = h.cfg.KV.Get(ctx, bucket, key)
		e.bytes(v)
		e.uint(rev)
	case opKVPut, opKVCreate:
		ttl := time.Duration(min(num, uint64(365*24*time.Hour/time.Millisecond))) * time.Millisecond
		var rev uint64
		if op == opKVPut {
			rev, err = h.cfg.KV.Put(ctx, bucket, key, value, ttl)
		} else {
			rev, err = h.cfg.KV.Create(ctx, bucket, key, value, ttl)
		}
		if access == "write" {
			// A revision is the bucket's sequence: from it a write-only
			// function would learn how many writes others made.
			rev = 0
		}
		e.uint(rev)
	case opKVUpdate:
		var rev uint64
		rev, err = h.cfg.KV.Update(ctx, bucket, key, value, num)
		e.uint(rev)
	case opKVDelete:
		err = h.cfg.KV.Delete(ctx, bucket, key)
	case opKVKeys:
		var keys []string
		keys, err = h.cfg.KV.Keys(ctx, bucket, key)
		e.uint(uint64(len(keys)))
		for _, k := range keys {
			e.string(k)
		}
	}
	if err != nil {
		return nil, storeErr(ctx, capability, err)
	}
	return e, nil
}

// allowed returns nil when a grant of access on the bucket (of kind
// "bucket" or "object bucket") covers need, else the audited denial.
func (h *Host) allowed(ctx context.Context, inv *Invocation, capability, kind, bucket, access, need string) error {
	if allows(access, need) {
		return nil
	}
	reason := "no grant on " + kind + " " + bucket
	if access != "" {
		reason = fmt.Sprintf("the grant on %s %s is %s; %s needs %s", kind, bucket, access, capability, need)
	}
	return h.deny(ctx, inv, capability, bucket, reason)
}

// allows tells whether a grant of access covers need.
func allows(access, need string) bool {
	switch access {
	case "read-write":
		return true
	case "read", "write":
		return access == need
	}
	return false
}

func storeErr(ctx context.Context, capability string, err error) error {
	switch {
	case errors.Is(err, kvstore.ErrNotFound), errors.Is(err, secrets.ErrNotFound), errors.Is(err, objstore.ErrNotFound):
		return statusErr(sandbox.StatusNotFound, "%s: %v", capability, err)
	case errors.Is(err, kvstore.ErrConflict):
		return statusErr(sandbox.StatusConflict, "%s: %v", capability, err)
	case errors.Is(err, kvstore.ErrInvalid), errors.Is(err, objstore.ErrInvalid):
		return statusErr(sandbox.StatusInvalid, "%s: %v", capability, err)
	case errors.Is(err, kvstore.ErrTooLarge), errors.Is(err, objstore.ErrTooLarge):
		return statusErr(sandbox.StatusTooLarge, "%s: %v", capability, err)
	case ctx.Err() != nil:
		return statusErr(sandbox.StatusTimeout, "%s: out of time", capability)
	}
	return statusErr(sandbox.StatusUnavailable, "%s: store unavailable", capability)
}

func (h *Host) secret(ctx context.Context, inv *Invocation, d *decoder) ([]byte, error) {
	name := d.string()
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	if !slices.Contains(inv.Perms.Secrets, name) {
		return nil, h.deny(ctx, inv, "secret.get", truncate(strings.ToValidUTF8(name, "?"), 130), "secret not granted")
	}
	if h.cfg.Secrets == nil {
		return nil, statusErr(sandbox.StatusUnavailable, "secrets are not available on this node")
	}
	v, err := h.cfg.Secrets.GetFor(ctx, name, inv.Function)
	if errors.Is(err, secrets.ErrNotAllowed) {
		// The manifest grants it, but the operator's list (which may have
		// changed since the deploy) does not name this function.
		return nil, h.deny(ctx, inv, "secret.get", name, "the secret's list of functions does not name "+inv.Function)
	}
	h.used(inv, "secret:"+name)
	if err != nil {
		return nil, storeErr(ctx, "secret.get", err)
	}
	inv.mu.Lock()
	if inv.read == nil {
		inv.read = map[string]string{}
	}
	inv.read[name] = string(v)
	inv.mu.Unlock()
	var e encoder
	e.bytes(v)
	return e, nil
}

func (h *Host) prefixes(inv *Invocation) []egress.Prefix {
	key := inv.Function + "/" + inv.Version
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.egress[key]; ok {
		return p
	}
	var out []egress.Prefix
	for _, s := range inv.Perms.Egress {
		if p, err := egress.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	if len(h.egress) > 4096 {
		clear(h.egress)
	}
	h.egress[key] = out
	return out
}

// target is what a denial names of a URL: no user info, no query.
func target(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return truncate(strings.ToValidUTF8(raw, "?"), 200)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return truncate(u.String(), 200)
}

func (h *Host) http(ctx context.Context, inv *Invocation, d *decoder) ([]byte, error) {
	method, raw, header, body := d.string(), d.string(), d.headers(), d.bytes()
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	prefixes := h.prefixes(inv)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, statusErr(sandbox.StatusInvalid, "http: %q is not a URL", truncate(raw, 200))
	}
	var grant string
	for _, p := range prefixes {
		if p.Allows(u) {
			grant = p.Raw
			break
		}
	}
	if grant == "" {
		return nil, h.deny(ctx, inv, "http", target(raw), "no egress grant covers this URL")
	}
	if h.cfg.Egress == nil {
		return nil, statusErr(sandbox.StatusUnavailable, "egress is not available on this node")
	}
	h.used(inv, "egress:"+grant)
	resp, err := h.cfg.Egress.Do(ctx, prefixes, method, raw, header, body)
	sent := int64(len(body))
	if resp != nil {
		sent += int64(len(resp.Body))
	}
	h.cfg.EgressBytes(inv.Function, sent)
	if err != nil {
		var denied *egress.DeniedError
		switch {
		case errors.As(err, &denied):
			return nil, h.deny(ctx, inv, "http", target(denied.Target), denied.Reason)
		case errors.Is(err, egress.ErrRequestTooLarge), errors.Is(err, egress.ErrResponseTooLarge):
			return nil, statusErr(sandbox.StatusTooLarge, "http: %v", err)
		case errors.Is(err, egress.ErrTimeout), ctx.Err() != nil:
			return nil, statusErr(sandbox.StatusTimeout, "http: %v", err)
		case errors.Is(err, egress.ErrInvalidRequest):
			return nil, statusErr(sandbox.StatusInvalid, "http: %v", err)
		}
		return nil, statusErr(sandbox.StatusUnavailable, "http: %v", err)
	}
	var e encoder
	e.uint(uint64(resp.Status))
	e.headers(resp.Header)
	e.bytes(resp.Body)
	return e, nil
}

func (h *Host) invoke(ctx context.Context, inv *Invocation, d *decoder) ([]byte, error) {
	function, method, tgt, header, body := d.string(), d.string(), d.string(), d.headers(), d.bytes()
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	if !slices.Contains(inv.Perms.Invoke, function) {
		return nil, h.deny(ctx, inv, "invoke", truncate(strings.ToValidUTF8(function, "?"), 80), "function not in the invoke grant")
	}
	if inv.Depth+1 > MaxDepth {
		return nil, h.deny(ctx, inv, "invoke", function, fmt.Sprintf("call chain deeper than %d", MaxDepth))
	}
	if h.cfg.Invoker == nil {
		return nil, statusErr(sandbox.StatusUnavailable, "calling functions is not available on this node")
	}
	if !strings.HasPrefix(tgt, "/") {
		tgt = "/" + tgt
	}
	h.used(inv, "invoke:"+function)
	status, rh, rb, err := h.cfg.Invoker.Invoke(ctx, inv, function, method, tgt, header, body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, statusErr(sandbox.StatusTimeout, "invoke %s: out of time", function)
		}
		return nil, statusErr(sandbox.StatusInvalid, "invoke %s: %v", function, err)
	}
	var e encoder
	e.uint(uint64(status))
	e.headers(rh)
	e.bytes(rb)
	return e, nil
}

// publish keeps an event on a subject the function's publish grant names.
// The event's source is the function, its publisher the invocation's
// chain of callers with the function first, as REMOTE_USER shows it to the
// functions that take it.
func (h *Host) publish(ctx context.Context, inv *Invocation, d *decoder) ([]byte, error) {
	subject, typ, contentType, data := d.string(), d.string(), d.string(), d.bytes()
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	if err := manifest.CheckSubject(subject); err != nil {
		return nil, invalid(err)
	}
	grant, ok := inv.Perms.PublishGrant(subject)
	if !ok {
		return nil, h.deny(ctx, inv, "publish", subject, "subject not in the publish grant")
	}
	if h.events == nil {
		return nil, statusErr(sandbox.StatusUnavailable, "publishing events is not available on this node")
	}
	h.used(inv, "publish:"+grant) // the grant, not the subject: one record per pattern
	publisher := "fn:" + inv.Function
	if inv.User != "" {
		publisher += ";" + inv.User
	}
	id, err := h.events.Publish(ctx, subject, typ, contentType, data, "/fn/"+inv.Function, publisher)
	var he *sandbox.HostError
	switch {
	case errors.As(err, &he):
		return nil, he
	case err != nil:
		if ctx.Err() != nil {
			return nil, statusErr(sandbox.StatusTimeout, "publish %s: out of time", subject)
		}
		h.log.ErrorContext(ctx, "publish", slog.String("fn", inv.Function), slog.String("subject", subject), slog.Any("err", err))
		return nil, statusErr(sandbox.StatusUnavailable, "publish %s failed", subject)
	}
	var e encoder
	e.string(id)
	return e, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
