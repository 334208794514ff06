// Package gateway is the HTTP trigger: it serves /fn/NAME[/PATH] by handing
// each request to the pipeline as one invocation and writing back what came
// of it. What is HTTP's own stays here: the request target, API keys and
// JWTs, the body's arrival, and the problem documents of refusals.
package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/host"
	"github.com/moatfn/moat/internal/logcap"
	"github.com/moatfn/moat/internal/pipeline"
	"github.com/moatfn/moat/internal/problem"
	"github.com/moatfn/moat/internal/registry"
)

// The reasons of refusals made before admission's, as metrics and the audit
// trail name them.
const (
	ReasonAuth        = "auth"         // no, a wrong or a refused credential
	ReasonAuthBlocked = "auth_blocked" // a source that kept failing authentication, answered 429
	ReasonEvent       = "event"        // ce-* headers that are no valid CloudEvent
)

// Prefix is the path under which functions are served.
const Prefix = "/fn/"

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

// Config holds the gateway's own limits.
type Config struct {
	// BodyWait is how long a request's body may take to arrive; 0 is 30s.
	BodyWait time.Duration
}

// Gateway serves /fn/. It is safe for concurrent use.
type Gateway struct {
	log   *slog.Logger
	pipe  *pipeline.Pipeline
	ids   identifier
	jwt   jwtVerifier // nil when the node verifies no JWT
	fails failureLimiter
	cfg   Config
	now   func() time.Time
	quiet *logcap.Limiter
}

var _ http.Handler = (*Gateway)(nil)

// New returns a Gateway over pipe. It does not listen; mount it on an
// http.Server.
//
// jwt may be nil: functions with auth: jwt then refuse every caller.
func New(log *slog.Logger, pipe *pipeline.Pipeline, ids identifier, jwt jwtVerifier, fails failureLimiter, cfg Config) *Gateway {
	if cfg.BodyWait == 0 {
		cfg.BodyWait = 30 * time.Second
	}
	return &Gateway{
		log: log.With("component", "gateway"), pipe: pipe, ids: ids, jwt: jwt, fails: fails, cfg: cfg,
		now: time.Now, quiet: pipe.Quiet(),
	}
}

// ServeHTTP invokes the function the path names.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := pipeline.NewID()
	w.Header().Set("Moat-Invocation-Id", id)
	inv := g.invocation(w, r, id, nil)
	res := g.pipe.Run(r.Context(), inv)
	writeResult(w, r.Method, id, res)
}

// invocation turns an HTTP request into the pipeline's invocation. from is
// the calling function's invocation, or nil for a request from outside.
func (g *Gateway) invocation(w http.ResponseWriter, r *http.Request, id string, from *host.Invocation) *pipeline.Invocation {
	name, pathInfo, rawPath, ok := Target(r)
	inv := &pipeline.Invocation{
		ID: id, Function: name, Trigger: pipeline.HTTP, Source: r.RemoteAddr, UserAgent: r.UserAgent(), From: from,
		Method: r.Method, PathInfo: pathInfo, RawPath: rawPath, RawQuery: r.URL.RawQuery, Proto: r.Proto,
		Host: r.Host, Header: r.Header,
	}
	if from != nil {
		inv.Trigger = pipeline.Call
	}
	if !ok {
		inv.Invalid = &pipeline.Problem{Status: http.StatusBadRequest, Reason: "target", Title: "malformed request",
			Detail: "the request target cannot be handed to " + name + " as sent"}
	} else if cloudevent.IsEvent(r.Header) {
		inv.Header, inv.Invalid = eventHeader(r.Header)
	}
	inv.Identify = func(ctx context.Context, fn *registry.Loaded) (string, *pipeline.Problem) {
		return g.authenticate(r, id, fn, from)
	}
	if r.Body != http.NoBody && r.Body != nil {
		inv.Body = func(limit int64) ([]byte, error) { return g.readBody(w, r, limit) }
	}
	return inv
}

// eventHeader checks the CloudEvent a request with ce-* headers claims to
// be, and returns its header with the attributes percent-decoded, as the
// function is to see them.
func eventHeader(h http.Header) (http.Header, *pipeline.Problem) {
	ev, err := cloudevent.FromHeader(h, nil)
	if err != nil {
		return h, &pipeline.Problem{Status: http.StatusBadRequest, Reason: ReasonEvent, Title: "malformed CloudEvent", Detail: err.Error()}
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		if !strings.HasPrefix(http.CanonicalHeaderKey(k), "Ce-") {
			out[k] = vs
		}
	}
	for k, vs := range ev.Header() {
		if k != "Content-Type" {
			out[k] = vs
		}
	}
	return out, nil
}

// readBody reads r's body within limit. The body must come within
// BodyWait: a client trickling it would otherwise hold its connection for
// the server's read timeout, which is minutes for the sake of deploys. Once
// the body is in, the deadline goes: net/http watches the connection for
// the client leaving, and a deadline left in place would end the request's
// context when that read times out (TestBodyWaitEndsWithBody). A body that
// did not come leaves it, so that the connection closes rather than wait
// for the rest.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var rc *http.ResponseController
	if w != nil {
		rc = http.NewResponseController(w)
		rc.SetReadDeadline(g.now().Add(g.cfg.BodyWait))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if rc != nil && err == nil {
		rc.SetReadDeadline(time.Time{})
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, pipeline.ErrTooLarge
	}
	return body, err
}

// writeResult answers with what came of an invocation.
func writeResult(w http.ResponseWriter, method, id string, res *pipeline.Result) {
	h := w.Header()
	if p := res.Problem; p != nil {
		if p.Status == pipeline.StatusGone {
			return // the client went away; nobody reads the answer
		}
		for k, vs := range p.Header {
			h[k] = vs
		}
		problem.WriteErrors(w, p.Status, p.Title, p.Detail, id, p.Errors)
		return
	}
	for k, vs := range res.Header {
		if k == "Set-Cookie" {
			vs = slices.DeleteFunc(slices.Clone(vs), auth.PlatformCookie)
		}
		h[k] = vs
	}
	h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(res.Status)
	if method != http.MethodHead {
		w.Write(res.Body)
	}
}

// authenticate applies the function's http.auth and returns the caller's
// identity as REMOTE_USER shows it, or the refusal: reason "auth", or
// "auth_blocked" for a source that kept failing.
func (g *Gateway) authenticate(r *http.Request, invocation string, fn *registry.Loaded, from *host.Invocation) (string, *pipeline.Problem) {
	name, m := fn.Name, fn.Manifest
	if from != nil {
		// A call from another function: the callee's own list decides.
		if !slices.Contains(m.HTTP.Callers, from.Function) {
			g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "call forbidden", slog.String("fn", name), slog.String("invocation_id", invocation),
				slog.String("caller", from.Function), slog.String("remote_addr", r.RemoteAddr))
			return "", forbidden(from.Function + " is not among the callers of " + name)
		}
		user := "fn:" + from.Function
		if from.User != "" {
			user += ";" + from.User
		}
		return user, nil
	}
	switch m.HTTP.Auth {
	case "public":
		return "", nil
	case "internal":
		return "", forbidden(name + " is internal: only the functions it lists may call it")
	}
	if wait, blocked := g.fails.Blocked(r.RemoteAddr); blocked {
		return "", &pipeline.Problem{Status: http.StatusTooManyRequests, Reason: ReasonAuthBlocked, Title: "too many failed authentications",
			Detail: "try again later", Header: http.Header{"Retry-After": {strconv.Itoa(int(wait.Seconds()) + 1)}}}
	}
	if m.HTTP.Auth == "jwt" {
		return g.authenticateJWT(r, invocation, name)
	}
	who, err := g.ids.Identify(r)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredential) {
			g.fails.Fail(r.RemoteAddr) // a guess; a missing token guesses nothing
		}
		g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "authentication failed", slog.String("fn", name), slog.String("invocation_id", invocation),
			slog.String("reason", err.Error()), slog.String("remote_addr", r.RemoteAddr))
		return "", unauthorized(name+" needs an API key: Authorization: Bearer TOKEN", `Bearer realm="moat"`)
	}
	if !who.MayInvoke(name) {
		g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "invocation forbidden", slog.String("fn", name), slog.String("invocation_id", invocation),
			slog.String("caller", who.User()), slog.String("remote_addr", r.RemoteAddr))
		return "", forbidden("this key may not invoke " + name)
	}
	return who.User(), nil
}

func (g *Gateway) authenticateJWT(r *http.Request, invocation, name string) (string, *pipeline.Problem) {
	if g.jwt == nil {
		return "", unauthorized(name+" needs a JWT, and this node verifies none", "")
	}
	tok, ok := auth.BearerToken(r)
	if !ok {
		return "", unauthorized(name+" needs a JWT: Authorization: Bearer TOKEN", `Bearer realm="moat"`)
	}
	claims, err := g.jwt.Verify(tok)
	if err != nil {
		g.fails.Fail(r.RemoteAddr)
		g.quiet.Log(r.Context(), g.log, slog.LevelWarn, r.RemoteAddr, "authentication failed", slog.String("fn", name), slog.String("invocation_id", invocation),
			slog.String("reason", err.Error()), slog.String("remote_addr", r.RemoteAddr))
		return "", unauthorized("the JWT was refused", `Bearer realm="moat", error="invalid_token"`)
	}
	return auth.JWTUser(claims.Subject), nil
}

func forbidden(detail string) *pipeline.Problem {
	return &pipeline.Problem{Status: http.StatusForbidden, Reason: ReasonAuth, Title: "forbidden", Detail: detail}
}

// unauthorized is a 401, with challenge as WWW-Authenticate if not "".
func unauthorized(detail, challenge string) *pipeline.Problem {
	p := &pipeline.Problem{Status: http.StatusUnauthorized, Reason: ReasonAuth, Title: "unauthorized", Detail: detail}
	if challenge != "" {
		p.Header = http.Header{"Www-Authenticate": {challenge}}
	}
	return p
}

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
