// Package gateway is the HTTP trigger: it serves /fn/NAME[/PATH] by running
// the function in a fresh sandbox instance, speaking CGI/1.1 to it.
//
// The pipeline of one invocation reads top to bottom in ServeHTTP:
// find the function -> check the method -> read the body within its cap ->
// admit (concurrency) -> run -> parse the CGI response -> record -> respond.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/admit"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/cgi"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/host"
	"github.com/moatfn/moat/internal/logcap"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/problem"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/sandbox"
)

// The reasons of refusals made before admission's, as metrics and the audit
// trail name them.
const (
	ReasonAuth        = "auth"         // no, a wrong or a refused credential
	ReasonAuthBlocked = "auth_blocked" // a source that kept failing authentication, answered 429
)

// Prefix is the path under which functions are served.
const Prefix = "/fn/"

// functions is what the gateway needs from the registry.
type functions interface {
	Acquire(ctx context.Context, fn string) (*registry.Loaded, error)
}

// identifier tells who a request comes from.
type identifier interface {
	Identify(r *http.Request) (*auth.Identity, error)
}

// jwtVerifier checks JWTs for functions with auth: jwt.
type jwtVerifier interface {
	Verify(token string) (*auth.Claims, error)
}

// failureLimiter slows down sources that keep failing authentication.
type failureLimiter interface {
	Blocked(remoteAddr string) (time.Duration, bool)
	Fail(remoteAddr string)
}

// admission decides whether an invocation may run.
type admission interface {
	Rate(fn, version string, lim manifest.Limits, caller string) *admit.Refusal
	Run(ctx context.Context, fn, version string, lim manifest.Limits) (func(), *admit.Refusal)
}

// budgets enforces spend budgets.
type budgets interface {
	Reserve(ctx context.Context, fn string, bud manifest.Budget, lim manifest.Limits) (func(time.Duration), *admit.Refusal)
}

// recorder keeps metrics.
type recorder interface {
	Invocation(fn string, status int, took time.Duration, memory int64)
	Refusal(fn, reason string)
}

// auditLog keeps the audit trail.
type auditLog interface {
	Append(ctx context.Context, rec audit.Record, sync bool) error
}

// logSink keeps invocation logs.
type logSink interface {
	Append(e *fnlog.Entry)
}

// hostCalls serves the host calls of invocations.
type hostCalls interface {
	Serve(inv *host.Invocation) sandbox.HostFunc
}

// Config holds node-wide limits.
type Config struct {
	// MaxLog and MaxLogLines cap what one invocation may log.
	MaxLog, MaxLogLines int
	// BodyWait is how long a request's body may take to arrive; 0 is 30s.
	BodyWait time.Duration
}

// Gateway serves /fn/. It is safe for concurrent use.
type Gateway struct {
	log    *slog.Logger
	fns    functions
	ids    identifier
	jwt    jwtVerifier // nil when the node verifies no JWT
	fails  failureLimiter
	logs   logSink
	admit  admission
	budget budgets
	rec    recorder
	audit  auditLog
	cfg    Config
	now    func() time.Time
	host   hostCalls // nil: every host call is refused
	quiet  *logcap.Limiter
}

// SetHost makes h serve the host calls of invocations. Call it before
// serving.
func (g *Gateway) SetHost(h hostCalls) { g.host = h }

var _ http.Handler = (*Gateway)(nil)

// New returns a Gateway. It does not listen; mount it on an http.Server.
//
// jwt may be nil: functions with auth: jwt then refuse every caller.
func New(log *slog.Logger, fns functions, ids identifier, jwt jwtVerifier, fails failureLimiter, adm admission, bud budgets, rec recorder, aud auditLog, logs logSink, cfg Config) *Gateway {
	if cfg.BodyWait == 0 {
		cfg.BodyWait = 30 * time.Second
	}
	return &Gateway{
		log:    log.With("component", "gateway"),
		fns:    fns,
		ids:    ids,
		jwt:    jwt,
		fails:  fails,
		logs:   logs,
		admit:  adm,
		budget: bud,
		rec:    rec,
		audit:  aud,
		cfg:    cfg,
		now:    time.Now,
		// The lines a stranger's refused request causes: one a second
		// per source and message (docs/audit.md).
		quiet: logcap.New(time.Second, 4096),
	}
}

// ServeHTTP invokes the function the path names.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	id := newInvocationID()
	w.Header().Set("Moat-Invocation-Id", id)
	name, pathInfo, rawPath, ok := Target(r)

	fn, err := g.fns.Acquire(r.Context(), name)
	if err != nil {
		g.refuse(w, r, id, name, err)
		return
	}
	defer fn.Release()
	m := fn.Manifest
	if !ok {
		g.refusal(r, id, name, "", "target")
		problem.Write(w, http.StatusBadRequest, "malformed request", "the request target cannot be handed to "+name+" as sent", id)
		return
	}
	if fn.Disabled != "" {
		g.refusal(r, id, name, "", "disabled")
		problem.Write(w, http.StatusServiceUnavailable, "function disabled", name+" is disabled: "+fn.Disabled, id)
		return
	}

	from := callerFrom(r.Context())
	user, refused := g.authenticate(w, r, id, name, m, from)
	if refused != "" {
		g.refusal(r, id, name, "", refused)
		return
	}
	caller := user
	if caller == "" || from != nil && from.User == "" {
		// Nobody authenticated at the start of the chain: tell callers
		// apart by where they come from.
		caller = strings.TrimSpace(caller + " " + auth.Block(r.RemoteAddr))
	}
	if no := g.admit.Rate(name, fn.Version, m.Limits, caller); no != nil {
		g.refuseAdmission(w, r, id, name, user, no)
		return
	}
	if !m.AllowsMethod(r.Method) {
		g.refusal(r, id, name, user, "method")
		w.Header().Set("Allow", strings.Join(m.Methods(), ", "))
		problem.Write(w, http.StatusMethodNotAllowed, "method not allowed", r.Method+" is not accepted by "+name, id)
		return
	}
	// The body must come within BodyWait: a client trickling it would
	// otherwise hold its connection for the server's read timeout, which
	// is minutes for the sake of deploys. Once the body is in, the
	// deadline goes: net/http watches the connection for the client
	// leaving, and a deadline left in place would end the request's
	// context when that read times out (TestBodyWaitEndsWithBody). A body
	// that did not come leaves it, so that the connection closes rather
	// than wait for the rest.
	// A request without a body (net/http's NoBody) waits for nothing.
	var rc *http.ResponseController
	if r.Body != http.NoBody {
		rc = http.NewResponseController(w)
		rc.SetReadDeadline(g.now().Add(g.cfg.BodyWait))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(m.Limits.Body)))
	if rc != nil && err == nil {
		rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		g.refusal(r, id, name, user, "body")
		if errors.As(err, &tooBig) {
			problem.Write(w, http.StatusRequestEntityTooLarge, "request body too large", fmt.Sprintf("the body limit of %s is %s", name, m.Limits.Body), id)
			return
		}
		problem.Write(w, http.StatusBadRequest, "unreadable request body", "", id)
		return
	}

	if !g.validInput(w, r, id, user, fn, body) {
		return
	}
	settle, no := g.budget.Reserve(r.Context(), name, m.Budget, m.Limits)
	if no != nil {
		g.refuseAdmission(w, r, id, name, user, no)
		return
	}
	release, no := g.admit.Run(r.Context(), name, fn.Version, m.Limits)
	if no != nil {
		settle(0)
		g.refuseAdmission(w, r, id, name, user, no)
		return
	}
	env := cgi.Env(m.Env, &cgi.Request{
		Method: r.Method, PathInfo: pathInfo, RawPath: rawPath, RawQuery: r.URL.RawQuery, Proto: r.Proto,
		Host: r.Host, RemoteAddr: r.RemoteAddr, RemoteUser: user, ContentLen: len(body), Header: r.Header,
	})
	// The host side of the invocation, for a module that makes host calls
	// or a call from a function (whose secrets its logs are scrubbed of).
	var inv *host.Invocation
	if fn.Module.UsesHost() || from != nil {
		inv = &host.Invocation{Function: name, Version: fn.Version, ID: id, User: user, Source: r.RemoteAddr, Perms: &m.Permissions}
		if from != nil {
			inv.Depth, inv.Known = from.Depth+1, from.Secrets()
		}
	}
	req := &sandbox.Request{
		Args:     []string{name},
		Env:      env,
		Stdin:    body,
		Timeout:  m.Limits.Timeout,
		MaxOut:   int(m.Limits.Response),
		MaxLog:   g.cfg.MaxLog,
		MaxLines: g.cfg.MaxLogLines,
	}
	if g.host != nil && inv != nil {
		req.Host = g.host.Serve(inv)
	}
	res, runErr := fn.Module.Run(r.Context(), req)
	release()
	settle(res.Took)

	var resp *cgi.Response
	if runErr == nil {
		resp, runErr = cgi.ParseResponse(res.Stdout)
	}
	status := http.StatusOK
	if runErr != nil {
		status = g.fail(w, r, id, name, runErr)
	} else {
		status = resp.Status
		h := w.Header()
		for k, vs := range resp.Header {
			h[k] = vs
		}
		h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
		w.WriteHeader(resp.Status)
		if r.Method != http.MethodHead {
			w.Write(resp.Body)
		}
	}
	took := g.now().Sub(start)
	g.rec.Invocation(name, status, took, int64(m.Limits.Memory))
	outcome := audit.OK
	if status >= 500 {
		outcome = audit.Failed
	}
	g.audit.Append(r.Context(), audit.Record{
		Action: "invoke", Target: name, Version: fn.Version, Outcome: outcome, Actor: user, Trigger: trigger(from),
		Source: r.RemoteAddr, UserAgent: truncate(r.UserAgent(), 200), InvocationID: id, Status: status,
		TookMS: float64(took.Microseconds()) / 1000, Memory: m.Limits.Memory.String(),
	}, false)
	// An invocation whose log went over the caps leaves an entry saying
	// how much was dropped, even when nothing else was kept.
	if len(res.Log) > 0 || res.Dropped > 0 || runErr != nil {
		e := &fnlog.Entry{
			Time: start.UTC(), Function: name, Version: fn.Version, InvocationID: id,
			Status: status, TookMS: float64(took.Microseconds()) / 1000, Lines: res.Log, Dropped: res.Dropped,
		}
		if runErr != nil {
			e.Error = runErr.Error()
		}
		if inv != nil {
			e.Lines = inv.Redact(e.Lines)
		}
		g.logs.Append(e)
	}
	g.log.DebugContext(r.Context(), "invocation done",
		slog.String("fn", name), slog.String("invocation_id", id),
		slog.Int("status", status), slog.Duration("took", took))
}

// authenticate applies the function's http.auth and returns the caller's
// identity as REMOTE_USER shows it, or the reason it refused: "auth", or
// "auth_blocked" for a source that kept failing. On refusal it has
// answered.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request, invocation, name string, m *manifest.Manifest, from *host.Invocation) (user, refused string) {
	if from != nil {
		// A call from another function: the callee's own list decides.
		if !slices.Contains(m.HTTP.Callers, from.Function) {
			g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "call forbidden", slog.String("fn", name), slog.String("invocation_id", invocation),
				slog.String("caller", from.Function), slog.String("remote_addr", r.RemoteAddr))
			problem.Write(w, http.StatusForbidden, "forbidden", from.Function+" is not among the callers of "+name, invocation)
			return "", ReasonAuth
		}
		user := "fn:" + from.Function
		if from.User != "" {
			user += ";" + from.User
		}
		return user, ""
	}
	mode := m.HTTP.Auth
	switch mode {
	case "public":
		return "", ""
	case "internal":
		problem.Write(w, http.StatusForbidden, "forbidden", name+" is internal: only the functions it lists may call it", invocation)
		return "", ReasonAuth
	}
	if wait, blocked := g.fails.Blocked(r.RemoteAddr); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		problem.Write(w, http.StatusTooManyRequests, "too many failed authentications", "try again later", invocation)
		return "", ReasonAuthBlocked
	}
	if mode == "jwt" {
		return g.authenticateJWT(w, r, invocation, name)
	}
	who, err := g.ids.Identify(r)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredential) {
			g.fails.Fail(r.RemoteAddr) // a guess; a missing token guesses nothing
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="moat"`)
		g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "authentication failed", slog.String("fn", name), slog.String("invocation_id", invocation),
			slog.String("reason", err.Error()), slog.String("remote_addr", r.RemoteAddr))
		problem.Write(w, http.StatusUnauthorized, "unauthorized", name+" needs an API key: Authorization: Bearer TOKEN", invocation)
		return "", ReasonAuth
	}
	if !who.MayInvoke(name) {
		g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "invocation forbidden", slog.String("fn", name), slog.String("invocation_id", invocation),
			slog.String("caller", who.User()), slog.String("remote_addr", r.RemoteAddr))
		problem.Write(w, http.StatusForbidden, "forbidden", "this key may not invoke "+name, invocation)
		return "", ReasonAuth
	}
	return who.User(), ""
}

// validInput applies the function's declared input: its content types and
// its schema. A refused request never starts an instance. On refusal it has
// answered.
func (g *Gateway) validInput(w http.ResponseWriter, r *http.Request, invocation, user string, fn *registry.Loaded, body []byte) bool {
	if types := fn.Manifest.Input.ContentTypes; len(types) > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || !slices.Contains(types, mt) {
			g.refusal(r, invocation, fn.Name, user, "content_type")
			problem.Write(w, http.StatusUnsupportedMediaType, "unsupported media type",
				fn.Name+" accepts "+strings.Join(types, ", "), invocation)
			return false
		}
	}
	if fn.Schema == nil {
		return true
	}
	if failures := fn.Schema.Check(body); failures != nil {
		g.refusal(r, invocation, fn.Name, user, "input")
		g.quiet.Log(r.Context(), g.log, slog.LevelInfo, r.RemoteAddr, "input refused", slog.String("fn", fn.Name), slog.String("invocation_id", invocation),
			slog.String("remote_addr", r.RemoteAddr), slog.Int("failures", len(failures)))
		problem.WriteErrors(w, http.StatusBadRequest, "invalid input", "the body does not match the input schema of "+fn.Name, invocation, failures)
		return false
	}
	return true
}

func (g *Gateway) authenticateJWT(w http.ResponseWriter, r *http.Request, invocation, name string) (user, refused string) {
	if g.jwt == nil {
		problem.Write(w, http.StatusUnauthorized, "unauthorized", name+" needs a JWT, and this node verifies none", invocation)
		return "", ReasonAuth
	}
	tok, ok := auth.BearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="moat"`)
		problem.Write(w, http.StatusUnauthorized, "unauthorized", name+" needs a JWT: Authorization: Bearer TOKEN", invocation)
		return "", ReasonAuth
	}
	claims, err := g.jwt.Verify(tok)
	if err != nil {
		g.fails.Fail(r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="moat", error="invalid_token"`)
		g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "authentication failed", slog.String("fn", name), slog.String("invocation_id", invocation),
			slog.String("reason", err.Error()), slog.String("remote_addr", r.RemoteAddr))
		problem.Write(w, http.StatusUnauthorized, "unauthorized", "the JWT was refused", invocation)
		return "", ReasonAuth
	}
	return auth.JWTUser(claims.Subject), ""
}

// refuseAdmission answers a request that admission refused.
func (g *Gateway) refuseAdmission(w http.ResponseWriter, r *http.Request, id, name, user string, no *admit.Refusal) {
	g.refusal(r, id, name, user, no.Reason)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(no.RetryAfter.Seconds(), 1)))))
	detail := map[string]string{
		admit.ReasonRate:       name + " is at its rate limit",
		admit.ReasonCallerRate: "you are at your rate limit for " + name,
		admit.ReasonBusy:       name + " is at its concurrency limit",
		admit.ReasonCapacity:   "the node is at capacity",
		admit.ReasonBudget:     name + " has spent its budget for this window",
		admit.ReasonNodeBudget: "the node has spent its budget for this window",
	}[no.Reason]
	title := "too many requests"
	if no.Status == http.StatusServiceUnavailable {
		title = "busy"
	}
	problem.Write(w, no.Status, title, detail, id)
}

// refusal meters and audits a request refused before it ran.
func (g *Gateway) refusal(r *http.Request, id, name, user, reason string) {
	g.rec.Refusal(name, reason)
	g.audit.Append(r.Context(), audit.Record{
		Action: "refuse", Target: name, Outcome: audit.Refused, Reason: reason, Actor: user,
		Source: r.RemoteAddr, UserAgent: truncate(r.UserAgent(), 200), InvocationID: id, Trigger: trigger(callerFrom(r.Context())),
	}, false)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// refuse answers a request for a function that cannot be run.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, id, name string, err error) {
	if errors.Is(err, registry.ErrNotFound) {
		problem.Write(w, http.StatusNotFound, "function not found", "no function is deployed as "+strconv.Quote(name), id)
		return
	}
	g.log.ErrorContext(r.Context(), "load function", slog.String("fn", name), slog.String("invocation_id", id), slog.Any("err", err))
	problem.Write(w, http.StatusInternalServerError, "function unavailable", "", id)
}

// fail answers a failed run. The caller learns the limit hit, or only that
// the function failed and the invocation id: the guest's stderr and stack
// stay in the function's log.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, id, name string, err error) int {
	var lim *sandbox.LimitError
	switch {
	case errors.As(err, &lim) && lim.Limit == "timeout":
		problem.Write(w, http.StatusGatewayTimeout, "function timed out", name+" exceeded its timeout of "+lim.Cap, id)
		return http.StatusGatewayTimeout
	case errors.As(err, &lim):
		problem.Write(w, http.StatusBadGateway, "function exceeded a limit", name+" exceeded its "+lim.Limit+" limit of "+lim.Cap, id)
		return http.StatusBadGateway
	case errors.Is(err, context.Canceled):
		return 499 // the client went away; nobody reads the answer
	case errors.Is(err, cgi.ErrMalformed):
		problem.Write(w, http.StatusBadGateway, "function failed", name+" wrote a malformed CGI response; see moat logs "+name, id)
		return http.StatusBadGateway
	default:
		problem.Write(w, http.StatusBadGateway, "function failed", name+" failed; see moat logs "+name, id)
		return http.StatusBadGateway
	}
}

// split separates the function name from the path after it.
// Target splits r's path below Prefix into the function's name, PATH_INFO
// (decoded, as CGI has it) and the same path as the client sent it (for
// REQUEST_URI). It reports false for a request a function could not be
// handed as sent: a "#" in the target (RFC 9112 has no fragment there, and
// a CGI child would cut the query at it).
func Target(r *http.Request) (name, pathInfo, rawPath string, ok bool) {
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), Prefix)
	seg, rest, found := strings.Cut(escaped, "/")
	name, err := url.PathUnescape(seg)
	if err != nil {
		return seg, "", "", false
	}
	if found {
		rawPath = "/" + rest
		if pathInfo, err = url.PathUnescape(rawPath); err != nil {
			return name, "", "", false
		}
	}
	if strings.ContainsRune(r.RequestURI, '#') || strings.ContainsRune(r.URL.RawQuery, '#') {
		return name, "", "", false
	}
	return name, pathInfo, rawPath, true
}

func newInvocationID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
