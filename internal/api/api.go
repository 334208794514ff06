// Package api is the control API under /api/v1: deploy, list, inspect,
// roll back and remove functions, and read their logs. Every route needs the
// admin token; docs/api.md documents the routes.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/admit"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/logcap"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/problem"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/store"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/usage"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1/"

// MaxDeploy caps a deploy request's body.
const MaxDeploy = 128 << 20

type functions interface {
	Deploy(ctx context.Context, up *registry.Upload) (*registry.Version, error)
	Get(ctx context.Context, fn string) (*registry.Function, error)
	List(ctx context.Context) ([]*registry.Function, error)
	Rollback(ctx context.Context, fn, version string) (*registry.Version, error)
	Remove(ctx context.Context, fn string) error
	SetDisabled(ctx context.Context, fn, reason string) error
}

type logs interface {
	Range(ctx context.Context, function string, n int, since, until time.Time, follow bool, fn func(*fnlog.Entry) error) error
}

type identifier interface {
	Identify(r *http.Request) (*auth.Identity, error)
}

type keyStore interface {
	Create(ctx context.Context, role string, functions, subjects []string, ttl time.Duration, note, createdBy string) (*auth.Key, string, error)
	List() []auth.Key
	Revoke(ctx context.Context, id string) error
}

type usageQuerier interface {
	Query(ctx context.Context, fn string, since time.Time, p usage.Prices) ([]usage.Row, error)
}

type auditLog interface {
	Append(ctx context.Context, rec audit.Record, sync bool) error
}

type auditReader interface {
	Records(ctx context.Context) ([]audit.Record, error)
	Verify(ctx context.Context) (*audit.Report, error)
}

type failureLimiter interface {
	Blocked(remoteAddr string) (time.Duration, bool)
	Fail(remoteAddr string)
}

// API serves the control API. It is safe for concurrent use.
type API struct {
	log      *slog.Logger
	fns      functions
	logs     logs
	ids      identifier
	keys     keyStore
	failures failureLimiter
	use      usageQuerier
	price    usage.Prices
	audit    auditLog
	trail    auditReader
	secrets  secretStore
	buckets  bucketLister
	objects  objectBuckets
	grants   grantReader
	rotate   Rotation
	supply   *supplyRoutes
	events   eventBus
	posture  PostureConfig
	budgets  budgetReader
	health   func(context.Context) (*store.Health, error)
	quiet    *logcap.Limiter
	mux      *http.ServeMux
	// stopping ends when the node drains: streams that would never end on
	// their own (logs --follow) end then, so that draining waits only for
	// invocations.
	stopping context.Context
}

var _ http.Handler = (*API)(nil)

// Route is one control API route and the roles allowed on it.
type Route struct {
	Pattern string // method and path, as http.ServeMux reads it
	Roles   []string
}

var (
	adminOnly = []string{auth.RoleAdmin}
	deployers = []string{auth.RoleAdmin, auth.RoleDeployer}
	readers   = []string{auth.RoleAdmin, auth.RoleDeployer, auth.RoleAuditor}
	auditors  = []string{auth.RoleAdmin, auth.RoleAuditor}
	// publishers may publish events: a publisher key only on its subjects.
	publishers = []string{auth.RoleAdmin, auth.RoleDeployer, auth.RolePublisher}
)

// Routes is the route-to-role table, the one docs/api.md shows.
func Routes() []Route {
	return []Route{
		{"GET /api/v1/functions", readers},
		{"POST /api/v1/functions", deployers},
		{"GET /api/v1/functions/{name}", readers},
		{"DELETE /api/v1/functions/{name}", deployers},
		{"POST /api/v1/functions/{name}/rollback", deployers},
		{"GET /api/v1/functions/{name}/logs", readers},
		{"POST /api/v1/keys", adminOnly},
		{"GET /api/v1/keys", adminOnly},
		{"DELETE /api/v1/keys/{id}", adminOnly},
		{"GET /api/v1/usage", readers},
		{"GET /api/v1/audit", auditors},
		{"GET /api/v1/audit/verify", auditors},
		{"GET /api/v1/secrets", deployers},
		{"PUT /api/v1/secrets/{name}", deployers},
		{"DELETE /api/v1/secrets/{name}", deployers},
		{"PUT /api/v1/secrets/{name}/functions", adminOnly},
		{"POST /api/v1/secrets/rotate-master", adminOnly},
		{"GET /api/v1/kv", readers},
		{"POST /api/v1/vulndb", adminOnly},
		{"GET /api/v1/vulndb", readers},
		{"GET /api/v1/vulns", readers},
		{"POST /api/v1/vulns/scan", readers},
		{"POST /api/v1/vulns/exceptions", adminOnly},
		{"GET /api/v1/vulns/exceptions", readers},
		{"DELETE /api/v1/vulns/exceptions/{function}/{id}", adminOnly},
		{"GET /api/v1/functions/{name}/sbom", readers},
		{"POST /api/v1/events/{subject}", publishers},
		{"GET /api/v1/functions/{name}/triggers", readers},
		{"GET /api/v1/posture", readers},
		{"GET /api/v1/node", readers},
		{"POST /api/v1/functions/{name}/disable", deployers},
		{"POST /api/v1/functions/{name}/enable", deployers},
		{"GET /api/v1/functions/{name}/dlq", deployers},
		{"GET /api/v1/functions/{name}/dlq/{id}", deployers},
		{"POST /api/v1/functions/{name}/dlq/replay", deployers},
		{"DELETE /api/v1/functions/{name}/dlq", deployers},
		{"GET /api/v1/objects", readers},
		{"GET /api/v1/objects/{bucket}", readers},
		{"GET /api/v1/objects/{bucket}/object", deployers},
		{"PUT /api/v1/objects/{bucket}/object", deployers},
		{"DELETE /api/v1/objects/{bucket}/object", deployers},
	}
}

// Services are what the API serves from.
type Services struct {
	Functions functions
	Logs      logs
	Identify  identifier
	Keys      keyStore
	Failures  failureLimiter
	Usage     usageQuerier
	Prices    usage.Prices
	Audit     auditLog
	Trail     auditReader
	Secrets   secretStore
	Buckets   bucketLister
	Objects   objectBuckets // nil: the object routes answer 503
	Grants    grantReader   // nil: grant use is not reported
	Rotate    Rotation
	Supply    *supplyRoutes
	Events    eventBus // nil: the event routes answer 503
	Posture   PostureConfig
	Budgets   budgetReader // nil: budget burn is not reported
	Health    func(context.Context) (*store.Health, error)
}

type budgetReader interface {
	Remaining() []admit.Remaining
}

// New returns the API handler. Log streams end when stopping does.
func New(log *slog.Logger, s Services, stopping context.Context) *API {
	a := &API{log: log.With("component", "api"), fns: s.Functions, logs: s.Logs, ids: s.Identify, keys: s.Keys,
		failures: s.Failures, use: s.Usage, price: s.Prices, audit: s.Audit, trail: s.Trail, mux: http.NewServeMux(), stopping: stopping,
		secrets: s.Secrets, buckets: s.Buckets, grants: s.Grants, rotate: s.Rotate, supply: s.Supply, events: s.Events, posture: s.Posture,
		budgets: s.Budgets, health: s.Health, objects: s.Objects,
		quiet: logcap.New(time.Second, 4096)} // one line a second per source and message
	handlers := map[string]http.HandlerFunc{
		"GET /api/v1/functions":                           a.list,
		"POST /api/v1/functions":                          a.deploy,
		"GET /api/v1/functions/{name}":                    a.get,
		"DELETE /api/v1/functions/{name}":                 a.remove,
		"POST /api/v1/functions/{name}/rollback":          a.rollback,
		"GET /api/v1/functions/{name}/logs":               a.tail,
		"POST /api/v1/keys":                               a.createKey,
		"GET /api/v1/keys":                                a.listKeys,
		"DELETE /api/v1/keys/{id}":                        a.revokeKey,
		"GET /api/v1/usage":                               a.usage,
		"GET /api/v1/audit":                               a.auditQuery,
		"GET /api/v1/audit/verify":                        a.auditVerify,
		"GET /api/v1/secrets":                             a.listSecrets,
		"PUT /api/v1/secrets/{name}":                      a.setSecret,
		"DELETE /api/v1/secrets/{name}":                   a.removeSecret,
		"PUT /api/v1/secrets/{name}/functions":            a.setSecretFunctions,
		"POST /api/v1/secrets/rotate-master":              a.rotateMaster,
		"GET /api/v1/kv":                                  a.listBuckets,
		"POST /api/v1/vulndb":                             a.importVulnDB,
		"GET /api/v1/vulndb":                              a.vulnDBStatus,
		"GET /api/v1/vulns":                               a.vulnFindings,
		"POST /api/v1/vulns/scan":                         a.scanVulns,
		"POST /api/v1/vulns/exceptions":                   a.allowVuln,
		"GET /api/v1/vulns/exceptions":                    a.listExceptions,
		"DELETE /api/v1/vulns/exceptions/{function}/{id}": a.removeException,
		"GET /api/v1/functions/{name}/sbom":               a.sbom,
		"POST /api/v1/events/{subject}":                   a.needEvents(a.publish),
		"GET /api/v1/posture":                             a.postureOf,
		"GET /api/v1/node":                                a.nodeReport,
		"POST /api/v1/functions/{name}/disable":           a.disable,
		"POST /api/v1/functions/{name}/enable":            a.enable,
		"GET /api/v1/functions/{name}/triggers":           a.needEvents(a.triggers),
		"GET /api/v1/functions/{name}/dlq":                a.needEvents(a.listLetters),
		"GET /api/v1/functions/{name}/dlq/{id}":           a.needEvents(a.showLetter),
		"POST /api/v1/functions/{name}/dlq/replay":        a.needEvents(a.replay),
		"DELETE /api/v1/functions/{name}/dlq":             a.needEvents(a.purgeLetters),
		"GET /api/v1/objects":                             a.listObjectBuckets,
		"GET /api/v1/objects/{bucket}":                    a.listObjects,
		"GET /api/v1/objects/{bucket}/object":             a.getObject,
		"PUT /api/v1/objects/{bucket}/object":             a.putObject,
		"DELETE /api/v1/objects/{bucket}/object":          a.removeObject,
	}
	for _, rt := range Routes() {
		a.mux.Handle(rt.Pattern, allow(rt.Roles, handlers[rt.Pattern], a.refusedRole))
	}
	a.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		Problem(w, http.StatusNotFound, "no such route", r.Method+" "+r.URL.Path)
	})
	return a
}

type identityKey struct{}

func identity(r *http.Request) *auth.Identity {
	return r.Context().Value(identityKey{}).(*auth.Identity)
}

// allow lets only the roles through; refused, if not nil, hears of the
// others.
func allow(roles []string, h http.HandlerFunc, refused func(*http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(roles, identity(r).Role) {
			if refused != nil {
				refused(r)
			}
			Problem(w, http.StatusForbidden, "forbidden", "this route needs the role "+strings.Join(roles, " or "))
			return
		}
		h(w, r)
	})
}

// refusedRole records a caller refused for its role.
func (a *API) refusedRole(r *http.Request) {
	a.record(r, audit.Record{Action: "refuse", Target: r.Method + " " + truncate(r.URL.Path, 100), Outcome: audit.Refused, Reason: "role"}, false)
}

// ServeHTTP identifies the caller, then routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, refused := identify(a.log, a.quiet, a.ids, a.failures, w, r)
	if refused != "" {
		a.record(r, audit.Record{Action: "auth.fail", Target: r.Method + " " + truncate(r.URL.Path, 100), Outcome: audit.Refused, Reason: refused}, false)
		return
	}
	a.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
}

// ServeAs serves r for the caller id, identified already: the console's
// way in, so that each action has one implementation, the same role checks
// and the same audit record whichever door it came through.
func (a *API) ServeAs(w http.ResponseWriter, r *http.Request, id *auth.Identity) {
	a.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
}

// The reasons of a failed authentication in the audit trail.
const (
	ReasonCredential = "credential" // no or a wrong token
	ReasonBlocked    = "blocked"    // a source that kept failing, answered 429
)

// identify sets the security headers every control response carries and
// returns the caller's identity, or why there is none (ReasonCredential,
// ReasonBlocked), having answered.
func identify(log *slog.Logger, quiet *logcap.Limiter, ids identifier, failures failureLimiter, w http.ResponseWriter, r *http.Request) (*auth.Identity, string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	if wait, blocked := failures.Blocked(r.RemoteAddr); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		Problem(w, http.StatusTooManyRequests, "too many failed authentications", "try again later")
		return nil, ReasonBlocked
	}
	id, err := ids.Identify(r)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredential) {
			failures.Fail(r.RemoteAddr) // a guess; a missing token guesses nothing
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="moat"`)
		quiet.Log(r.Context(), log, slog.LevelWarn, r.RemoteAddr, "authentication failed", slog.String("reason", err.Error()),
			slog.String("remote_addr", r.RemoteAddr), slog.String("method", r.Method), slog.String("path", truncate(r.URL.Path, 100)))
		Problem(w, http.StatusUnauthorized, "unauthorized", "a valid token is required: Authorization: Bearer TOKEN")
		return nil, ReasonCredential
	}
	return id, ""
}

// Guard lets through to h only callers with one of roles, identified as the
// control API identifies them. The node guards /metrics with it.
func Guard(ids identifier, failures failureLimiter, roles []string, h http.Handler) http.Handler {
	allowed := allow(roles, h.ServeHTTP, nil)
	log, quiet := slog.New(slog.DiscardHandler), logcap.New(time.Second, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, refused := identify(log, quiet, ids, failures, w, r)
		if refused != "" {
			return
		}
		allowed.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	fns, err := a.fns.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	spent := map[string][]BudgetUse{}
	if a.budgets != nil {
		for _, b := range a.budgets.Remaining() {
			spent[b.Function] = append(spent[b.Function], BudgetUse{Budget: b.Budget, Window: b.Window, Amount: b.Amount, Left: b.Left})
		}
		for _, bs := range spent {
			slices.SortFunc(bs, func(x, y BudgetUse) int { return strings.Compare(x.Budget+x.Window, y.Budget+y.Window) })
		}
	}
	out := make([]Summary, 0, len(fns))
	for _, f := range fns {
		s := summarize(f)
		s.Budgets = spent[f.Name]
		if v := f.ActiveVersion(); v != nil {
			s.Grants = a.grantUse(r.Context(), f.Name, v.Manifest)
			if a.events != nil && len(v.Manifest.Triggers) > 0 {
				if ts, err := a.events.Triggers(r.Context(), f.Name); err == nil {
					s.Triggers = ts
				}
			}
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, out)
}

// Summary is a function as `moat ls` shows it.
type Summary struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Owner    string    `json:"owner,omitempty"`
	Auth     string    `json:"auth"`
	Memory   string    `json:"memory"`
	Timeout  string    `json:"timeout"`
	Deployed time.Time `json:"deployed"`
	Versions int       `json:"versions"`
	// Grants lists the active version's grants with when each was last
	// used, so that granted-but-unused permissions show.
	Grants []GrantUse `json:"grants,omitempty"`
	// Vulnerabilities counts the active version's advisories by decision
	// (block, warn, allowed); nil when it has none.
	Vulnerabilities map[string]int `json:"vulnerabilities,omitempty"`
	// Disabled says why the function refuses invocations; "" when it serves.
	Disabled string `json:"disabled,omitempty"`
	// SignedBy is the id of the key that signed the active version.
	SignedBy string `json:"signed_by,omitempty"`
	// Triggers is the state of the function's event triggers: backlog,
	// events in flight, dead letters.
	Triggers []events.TriggerState `json:"triggers,omitempty"`
	// Budgets is what is left of the budget windows this node has spent
	// from (a budget never spent from is not listed).
	Budgets []BudgetUse `json:"budgets,omitempty"`
}

// BudgetUse is one budget window: what it allows and what is left.
type BudgetUse struct {
	Budget string  `json:"budget"` // invocations or gb_seconds
	Window string  `json:"window"` // its name: 2026-11-28T15, 2026-11-28, 2026-11
	Amount float64 `json:"amount"`
	Left   float64 `json:"left"`
}

func summarize(f *registry.Function) Summary {
	s := Summary{Name: f.Name, Version: f.Active, Versions: len(f.Versions), Disabled: f.Disabled}
	if v := f.ActiveVersion(); v != nil {
		var rep supply.Report
		if len(v.Checks) > 0 && json.Unmarshal(v.Checks, &rep) == nil {
			s.SignedBy = rep.SignedBy
			for _, fd := range rep.Findings {
				if s.Vulnerabilities == nil {
					s.Vulnerabilities = map[string]int{}
				}
				s.Vulnerabilities[fd.Decision]++
			}
		}
		s.Owner = v.Manifest.Owner
		s.Auth = v.Manifest.HTTP.Auth
		s.Memory = v.Manifest.Limits.Memory.String()
		s.Timeout = v.Manifest.Limits.Timeout.String()
		s.Deployed = v.Deployed
	}
	return s
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	f, err := a.fns.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.fns.Remove(r.Context(), name)
	a.done(w, r, "remove", truncate(name, 70), "", err, func() {
		a.log.InfoContext(r.Context(), "function removed", slog.String("fn", name), slog.String("remote_addr", r.RemoteAddr))
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Version string `json:"version"`
	}
	if err := decodeJSON(r, &req); err != nil || req.Version == "" {
		Problem(w, http.StatusBadRequest, "bad request", `the body must be {"version":"ID"}`)
		return
	}
	v, err := a.fns.Rollback(r.Context(), r.PathValue("name"), req.Version)
	a.done(w, r, "rollback", truncate(r.PathValue("name"), 70), truncate(req.Version, 70), err, func() {
		a.log.InfoContext(r.Context(), "function rolled back", slog.String("fn", r.PathValue("name")), slog.String("version", v.ID), slog.String("remote_addr", r.RemoteAddr))
		writeJSON(w, http.StatusOK, v)
	})
}

// deploy takes multipart/form-data: a part "manifest" (moat.yaml), a part
// "file:PATH" for each file the manifest names and, when signed, a part
// "signature" (moat.sig).
func (a *API) deploy(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		Problem(w, http.StatusUnsupportedMediaType, "unsupported media type", "deploy takes multipart/form-data")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxDeploy)
	mr, err := r.MultipartReader()
	if err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	var src, sig []byte
	files := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.badBody(w, err)
			return
		}
		name := p.FormName()
		data, err := io.ReadAll(p)
		if err != nil {
			a.badBody(w, err)
			return
		}
		switch {
		case name == "manifest" && src == nil:
			src = data
		case name == "signature" && sig == nil:
			sig = data
		case strings.HasPrefix(name, "file:") && files[strings.TrimPrefix(name, "file:")] == nil:
			files[strings.TrimPrefix(name, "file:")] = data
		default:
			Problem(w, http.StatusBadRequest, "bad request", fmt.Sprintf("unexpected or repeated part %q", name))
			return
		}
	}
	if src == nil {
		Problem(w, http.StatusBadRequest, "bad request", `no "manifest" part`)
		return
	}
	v, err := a.fns.Deploy(r.Context(), &registry.Upload{Manifest: src, Files: files, Signature: sig, Actor: identity(r).User()})
	target, version := "", ""
	if v != nil {
		target, version = v.Manifest.Name, v.ID
	}
	a.done(w, r, "deploy", target, version, err, func() {
		a.log.InfoContext(r.Context(), "function deployed",
			slog.String("fn", v.Manifest.Name), slog.String("version", v.ID), slog.String("remote_addr", r.RemoteAddr),
			slog.Duration("compile", v.CompileTook))
		writeJSON(w, http.StatusCreated, v)
	})
}

// record appends an audit record of r's caller and source. Control actions
// are appended synchronously: the caller hears of success only once the
// record is stored.
func (a *API) record(r *http.Request, rec audit.Record, sync bool) error {
	if id, ok := r.Context().Value(identityKey{}).(*auth.Identity); ok && rec.Actor == "" {
		rec.Actor = id.User()
	}
	rec.Source, rec.UserAgent = r.RemoteAddr, truncate(r.UserAgent(), 200)
	err := a.audit.Append(r.Context(), rec, sync)
	if err != nil {
		a.log.ErrorContext(r.Context(), "audit append", slog.String("action", rec.Action), slog.Any("err", err))
	}
	return err
}

// done records a control action's outcome and answers: with the result
// when it was applied and recorded, with the error otherwise.
func (a *API) done(w http.ResponseWriter, r *http.Request, action, target, version string, err error, ok func()) {
	rec := audit.Record{Action: action, Target: target, Version: version, Outcome: audit.OK}
	if err != nil {
		rec.Outcome, rec.Reason = audit.Failed, truncate(err.Error(), 300)
		if errors.Is(err, ErrForbidden) {
			rec.Outcome = audit.Refused
		}
	}
	aerr := a.record(r, rec, true)
	switch {
	case err != nil:
		a.fail(w, r, err)
	case aerr != nil:
		Problem(w, http.StatusInternalServerError, "not recorded", action+" was applied but its audit record could not be stored; see the node's log")
	default:
		ok()
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (a *API) badBody(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		Problem(w, http.StatusRequestEntityTooLarge, "request too large", fmt.Sprintf("a deploy is at most %d bytes", MaxDeploy))
		return
	}
	Problem(w, http.StatusBadRequest, "bad request", err.Error())
}

// tail streams log entries as JSON lines: ?n=100 newest (default 100),
// &since= and &until= (RFC 3339 or a duration back) to bound them,
// &follow=true to keep streaming.
func (a *API) tail(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := a.fns.Get(r.Context(), name); err != nil {
		a.fail(w, r, err)
		return
	}
	n := 100
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > fnlog.PerFunction {
			Problem(w, http.StatusBadRequest, "bad request", fmt.Sprintf("n must be 0..%d", fnlog.PerFunction))
			return
		}
		n = v
	}
	follow := r.URL.Query().Get("follow") == "true"
	var since, until time.Time
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		if s := r.URL.Query().Get(b.name); s != "" {
			t, err := ParseSince(s, time.Now())
			if err != nil {
				Problem(w, http.StatusBadRequest, "bad request", b.name+": "+err.Error())
				return
			}
			*b.t = t
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.stopping, cancel)()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	err := a.logs.Range(ctx, name, n, since, until, follow, func(e *fnlog.Entry) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		a.log.WarnContext(r.Context(), "log tail", slog.String("fn", name), slog.Any("err", err))
	}
}

// fail maps an error to its status, once, at the edge.
// ErrBadRequest marks an error the caller must fix: it answers 400.
var ErrBadRequest = errors.New("bad request")

// ErrForbidden marks a request the caller's key may not make: 403, and
// audited as refused.
var ErrForbidden = errors.New("forbidden")

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var merr *manifest.Error
	switch {
	case errors.Is(err, ErrBadRequest):
		Problem(w, http.StatusBadRequest, "bad request", strings.TrimPrefix(err.Error(), "bad request: "))
	case errors.Is(err, ErrForbidden):
		Problem(w, http.StatusForbidden, "forbidden", strings.TrimPrefix(err.Error(), "forbidden: "))
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, auth.ErrNoKey):
		Problem(w, http.StatusNotFound, "not found", err.Error())
	case errors.Is(err, registry.ErrConflict):
		Problem(w, http.StatusConflict, "conflict", err.Error())
	case errors.As(err, &merr):
		named := *merr
		if named.File == "" {
			named.File = manifest.FileName
		}
		Problem(w, http.StatusBadRequest, "invalid manifest", named.Error())
	case errors.Is(err, sandbox.ErrInvalidModule), errors.Is(err, registry.ErrBadDeploy):
		Problem(w, http.StatusBadRequest, "invalid deploy", err.Error())
	default:
		a.log.ErrorContext(r.Context(), "control api", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		Problem(w, http.StatusInternalServerError, "internal error", "see the node's log")
	}
}

// Problem writes an RFC 9457 problem document.
func Problem(w http.ResponseWriter, status int, title, detail string) {
	problem.Write(w, status, title, detail, "")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// usage answers GET /api/v1/usage?function=F&since=24h (or an RFC 3339
// time; default the last 24 hours).
func (a *API) usage(w http.ResponseWriter, r *http.Request) {
	fn := r.URL.Query().Get("function")
	if fn != "" && !manifest.ValidName(fn) {
		Problem(w, http.StatusBadRequest, "bad request", "function: not a function name")
		return
	}
	since, err := ParseSince(r.URL.Query().Get("since"), time.Now())
	if err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	until := time.Now()
	if u := r.URL.Query().Get("until"); u != "" {
		if until, err = ParseSince(u, time.Now()); err != nil {
			Problem(w, http.StatusBadRequest, "bad request", strings.Replace(err.Error(), "since", "until", 1))
			return
		}
	}
	rows, err := a.use.Query(r.Context(), fn, since, a.price)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rows = slices.DeleteFunc(rows, func(row usage.Row) bool { return row.Hour.After(until) })
	writeJSON(w, http.StatusOK, rows)
}

// ParseSince reads a point in time: "" (24 hours ago), a duration back from
// now ("7d", "12h"), or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.Add(-24 * time.Hour), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := ParseTTL(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: want a duration like 24h or 7d, or an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

// auditQuery answers GET /api/v1/audit: records newest first, filtered by
// fn, actor, action, outcome and source (exact), since and until (RFC 3339
// or a duration back), at most limit (default 100, at most 10000). The next
// page is before=SEQ, the seq of the last record of this one.
func (a *API) auditQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			Problem(w, http.StatusBadRequest, "bad request", "limit must be 1..10000")
			return
		}
		limit = n
	}
	var before uint64
	if s := q.Get("before"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			Problem(w, http.StatusBadRequest, "bad request", "before must be a sequence number")
			return
		}
		before = n
	}
	var since, until time.Time
	var err error
	if s := q.Get("since"); s != "" {
		if since, err = ParseSince(s, time.Now()); err != nil {
			Problem(w, http.StatusBadRequest, "bad request", err.Error())
			return
		}
	}
	if s := q.Get("until"); s != "" {
		if until, err = ParseSince(s, time.Now()); err != nil {
			Problem(w, http.StatusBadRequest, "bad request", err.Error())
			return
		}
	}
	recs, err := a.trail.Records(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	match := func(want, got string) bool { return want == "" || want == got }
	out := []audit.Record{}
	for i := len(recs) - 1; i >= 0 && len(out) < limit; i-- {
		rec := recs[i]
		if rec.Action == "checkpoint" && q.Get("action") != "checkpoint" || before > 0 && rec.Seq >= before {
			continue
		}
		if !match(q.Get("fn"), rec.Target) || !match(q.Get("actor"), rec.Actor) || !match(q.Get("action"), rec.Action) ||
			!match(q.Get("outcome"), rec.Outcome) || !match(q.Get("source"), auth.Source(rec.Source)) && !match(q.Get("source"), rec.Source) {
			continue
		}
		if (!since.IsZero() && rec.Time.Before(since)) || (!until.IsZero() && rec.Time.After(until)) {
			continue
		}
		out = append(out, rec)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) auditVerify(w http.ResponseWriter, r *http.Request) {
	rep, err := a.trail.Verify(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
