// Package console is the operators' web UI: server-rendered pages over the
// control API, on a listener and origin of their own (docs/console.md).
//
// The console holds no logic of its own for what it shows or changes: every
// page reads the control API and every action is the API's, served in
// process for the signed-in key (api.API.ServeAs), so the roles, the
// validation and the audit record are the API's whichever door a change
// came through. What the console adds is the browser's side of security:
// sign-in, sessions, CSRF tokens, a strict Content-Security-Policy and no
// script at all.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
)

// Cookie names the session cookie over plain HTTP (loopback only); over
// TLS it is SecureCookie, whose __Host- prefix the browser enforces
// (Secure, no Domain, Path=/). The gateway never hands either to a function.
const (
	Cookie       = auth.ConsoleCookie
	SecureCookie = auth.ConsoleSecureCookie
)

// Session bounds: a session ends after IdleTimeout without a request, and
// at MaxAge in any case; at most MaxSessions are open at once (the oldest
// gives way).
const (
	IdleTimeout = 30 * time.Minute
	MaxAge      = 8 * time.Hour
	MaxSessions = 1024
)

// backend is the control API, served for an identified caller.
type backend interface {
	ServeAs(w http.ResponseWriter, r *http.Request, id *auth.Identity)
}

type identifier interface {
	Identify(r *http.Request) (*auth.Identity, error)
	// Lookup is the key id's identity as it stands now.
	Lookup(id string) (*auth.Identity, error)
}

type failureLimiter interface {
	Blocked(remoteAddr string) (time.Duration, bool)
	Fail(remoteAddr string)
}

type auditLog interface {
	Append(ctx context.Context, rec audit.Record, sync bool) error
}

// Config is what the console is built from.
type Config struct {
	API      backend
	Identify identifier     // the API's own: API keys and the admin token
	Failures failureLimiter // shared with the API: a guess here counts there
	Audit    auditLog
	// TLS says the console is served over TLS: the cookie is Secure and
	// __Host-, and only https origins are accepted.
	TLS bool
	// Hosts, if not empty, are the only Host headers accepted (host:port);
	// a loopback console accepts only loopback names, so that a page on
	// another site cannot reach it through DNS rebinding.
	Hosts []string
	Node  string // the node's id, shown in the header
	Now   func() time.Time
}

// Console serves the console. It is safe for concurrent use.
type Console struct {
	log   *slog.Logger
	cfg   Config
	mux   *http.ServeMux
	pages *template.Template
	now   func() time.Time

	mu       sync.Mutex
	sessions map[[32]byte]*session // by SHA-256 of the cookie's value
}

// session is one signed-in browser. It keeps the key's id, not the key:
// each request looks the key up again, so a revoked or expired key ends
// its sessions at once.
type session struct {
	id       *auth.Identity
	csrf     string
	created  time.Time
	lastSeen time.Time
	flash    string
}

//go:embed templates/*.html static/*
var files embed.FS

// New returns the console.
func New(log *slog.Logger, cfg Config) *Console {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{log: log.With("component", "console"), cfg: cfg, mux: http.NewServeMux(), now: cfg.Now,
		sessions: map[[32]byte]*session{}}
	c.pages = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/*.html"))
	static := http.FileServerFS(files)
	c.mux.Handle("GET /static/", static)
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.signedIn(c.logout))
	c.mux.HandleFunc("GET /{$}", c.signedIn(c.functions))
	c.mux.HandleFunc("GET /functions/{name}", c.signedIn(c.function))
	c.mux.HandleFunc("GET /functions/{name}/logs", c.signedIn(c.tail))
	c.mux.HandleFunc("POST /functions/{name}/rollback", c.signedIn(c.rollback))
	c.mux.HandleFunc("POST /functions/{name}/disable", c.signedIn(c.disable))
	c.mux.HandleFunc("POST /functions/{name}/enable", c.signedIn(c.enable))
	c.mux.HandleFunc("GET /posture", c.signedIn(c.posture))
	c.mux.HandleFunc("GET /audit", c.signedIn(c.audit))
	c.mux.HandleFunc("GET /audit/{seq}", c.signedIn(c.auditRecord))
	c.mux.HandleFunc("GET /dead-letters", c.signedIn(c.deadLetters))
	c.mux.HandleFunc("GET /dead-letters/{name}", c.signedIn(c.deadLettersOf))
	c.mux.HandleFunc("POST /dead-letters/{name}/replay", c.signedIn(c.replay))
	c.mux.HandleFunc("POST /dead-letters/{name}/purge", c.signedIn(c.purge))
	c.mux.HandleFunc("GET /node", c.signedIn(c.node))
	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, http.StatusNotFound, "Not found", "There is no such page.")
	})
	return c
}

// csp lets the page load its stylesheet and nothing else: no script
// runs on a console page, not even the console's.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP sets the headers every console response carries, refuses a
// foreign Host and any cross-site change, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make the browser send Origin: null on our own forms
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if c.cfg.TLS {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !c.hostAllowed(r.Host) {
		http.Error(w, "misdirected request: this console answers only at its own address", http.StatusMisdirectedRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if why := c.crossSite(r); why != "" {
			c.refuse(r, nil, why)
			c.errorPage(w, r, nil, http.StatusForbidden, "Refused", "A change must come from a console page: "+why+".")
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) hostAllowed(host string) bool {
	if len(c.cfg.Hosts) == 0 {
		return true
	}
	for _, h := range c.cfg.Hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// crossSite says why a change request did not come from a console page:
// the browser names where a request came from (Sec-Fetch-Site, Origin),
// and only this origin may change anything. The CSRF token is checked
// besides, for browsers that send neither header.
func (c *Console) crossSite(r *http.Request) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "the browser says it came from " + site
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host || (u.Scheme == "https") != c.cfg.TLS {
		return "it came from another origin"
	}
	return ""
}

func (c *Console) cookieName() string {
	if c.cfg.TLS {
		return SecureCookie
	}
	return Cookie
}

func sessionKey(v string) [32]byte { return sha256.Sum256([]byte(v)) }

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// current returns the request's session and the caller it stands for,
// or nil: no cookie, an unknown or ended session, or a key no longer good.
func (c *Console) current(r *http.Request) (*session, *auth.Identity) {
	ck, err := r.Cookie(c.cookieName())
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return nil, nil
	}
	k := sessionKey(ck.Value)
	now := c.clock()
	c.mu.Lock()
	s := c.sessions[k]
	if s != nil && (now.Sub(s.lastSeen) > IdleTimeout || now.Sub(s.created) > MaxAge) {
		delete(c.sessions, k)
		s = nil
	}
	if s != nil {
		s.lastSeen = now
	}
	c.mu.Unlock()
	if s == nil {
		return nil, nil
	}
	id, err := c.cfg.Identify.Lookup(s.id.ID)
	if err != nil || id.Role != s.id.Role || !consoleRole(id.Role) {
		c.mu.Lock()
		delete(c.sessions, k)
		c.mu.Unlock()
		return nil, nil
	}
	return s, id
}

func (c *Console) identify(token string) (*auth.Identity, error) {
	probe := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
	return c.cfg.Identify.Identify(probe)
}

// consoleRole reports whether a key of the role may sign in: the roles
// that read the control API. Invoker and publisher keys call functions
// and publish events; they have nothing to see here.
func consoleRole(role string) bool {
	return role == auth.RoleAdmin || role == auth.RoleDeployer || role == auth.RoleAuditor
}

type ctxKey struct{}

type caller struct {
	s  *session
	id *auth.Identity
}

func from(r *http.Request) caller { return r.Context().Value(ctxKey{}).(caller) }

// signedIn lets through a request with a live session, and a change only
// with the session's CSRF token; others go to the sign-in page.
func (c *Console) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, id := c.current(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.refuse(r, nil, "no session")
			c.errorPage(w, r, nil, http.StatusForbidden, "Signed out", "Your session ended: sign in again.")
			return
		}
		if r.Method != http.MethodGet {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				c.refuse(r, id, "csrf token")
				c.errorPage(w, r, nil, http.StatusForbidden, "Refused", "The form's token is missing or wrong: reload the page and try again.")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, caller{s, id})))
	}
}

// refuse audits a change the console refused before it reached the API.
func (c *Console) refuse(r *http.Request, id *auth.Identity, why string) {
	rec := audit.Record{Action: "refuse", Target: "console " + r.Method + " " + truncate(r.URL.Path, 100), Outcome: audit.Refused, Reason: why}
	if id != nil {
		rec.Actor = id.User()
	}
	c.audited(r, rec)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, _ := c.current(r); s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: map[string]string{"Next": safeNext(r.URL.Query().Get("next"))}})
}

// safeNext keeps a post-sign-in redirect on this console: a path, never
// another host (//evil, /\evil, a scheme).
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") || len(next) > 500 {
		return "/"
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	loginFail := func(status int, msg string) {
		c.render(w, r, status, "login", page{Title: "Sign in", Error: msg, Data: map[string]string{"Next": safeNext(r.PostFormValue("next"))}})
	}
	if wait, blocked := c.cfg.Failures.Blocked(r.RemoteAddr); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.audited(r, audit.Record{Action: "auth.fail", Target: "console sign-in", Outcome: audit.Refused, Reason: "blocked"})
		loginFail(http.StatusTooManyRequests, "Too many failed sign-ins from your address: try again later.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		loginFail(http.StatusBadRequest, "The form could not be read.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("key"))
	id, err := c.identify(token)
	if err != nil {
		if token != "" {
			c.cfg.Failures.Fail(r.RemoteAddr)
		}
		c.audited(r, audit.Record{Action: "auth.fail", Target: "console sign-in", Outcome: audit.Refused, Reason: "credential"})
		loginFail(http.StatusUnauthorized, "That is not a valid API key.")
		return
	}
	if !consoleRole(id.Role) {
		c.audited(r, audit.Record{Actor: id.User(), Action: "console.signin", Outcome: audit.Refused, Reason: "role " + id.Role})
		loginFail(http.StatusForbidden, "A key of the role "+id.Role+" cannot sign in to the console: use an admin, deployer or auditor key.")
		return
	}
	value := randomToken()
	now := c.clock()
	s := &session{id: id, csrf: randomToken(), created: now, lastSeen: now}
	c.mu.Lock()
	if len(c.sessions) >= MaxSessions {
		var oldest [32]byte
		var at time.Time
		for k, o := range c.sessions {
			if at.IsZero() || o.lastSeen.Before(at) {
				oldest, at = k, o.lastSeen
			}
		}
		delete(c.sessions, oldest)
	}
	c.sessions[sessionKey(value)] = s
	c.mu.Unlock()
	c.audited(r, audit.Record{Actor: id.User(), Action: "console.signin", Outcome: audit.OK})
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: value, Path: "/", HttpOnly: true, Secure: c.cfg.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: int(MaxAge.Seconds())})
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(c.cookieName()); err == nil {
		c.mu.Lock()
		delete(c.sessions, sessionKey(ck.Value))
		c.mu.Unlock()
	}
	c.audited(r, audit.Record{Actor: from(r).id.User(), Action: "console.signout", Outcome: audit.OK})
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: "", Path: "/", HttpOnly: true, Secure: c.cfg.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (c *Console) audited(r *http.Request, rec audit.Record) {
	rec.Source, rec.UserAgent = r.RemoteAddr, truncate(r.UserAgent(), 200)
	if err := c.cfg.Audit.Append(r.Context(), rec, rec.Outcome == audit.OK); err != nil {
		c.log.Error("audit append", slog.String("action", rec.Action), slog.Any("err", err))
	}
}

// SetClock replaces the console's clock: for tests of session ends.
func (c *Console) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// LoopbackHosts are the Host headers a console listening on addr
// (127.0.0.1:8081, [::1]:8081, localhost:8081) answers to.
func LoopbackHosts(addr string) []string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	return []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (c *Console) clock() time.Time {
	c.mu.Lock()
	now := c.now
	c.mu.Unlock()
	return now()
}
