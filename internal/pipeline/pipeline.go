// Package pipeline runs one invocation of a function, whatever triggered it.
//
// A trigger (the HTTP gateway, a function calling another, a queue
// consumer, a schedule) turns its input into an [Invocation] and hands it
// to [Pipeline.Run], which takes it through the same steps every time and
// returns a [Result] the trigger maps back: an HTTP response, or an ack, a
// retry later or a dead letter. The steps, in order, are the list in Run:
//
//	find the function -> identify the caller -> rate limits -> method ->
//	read the body within its cap -> validate (content type, schema) ->
//	reserve budget -> admit (concurrency) -> run -> record.
//
// A step that refuses ends the invocation before any instance starts; the
// refusal is metered and audited like a run.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
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
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/sandbox"
)

// Trigger kinds, as the audit trail and the metrics name them.
const (
	HTTP     = "http"     // a request to /fn/NAME
	Call     = "fn"       // a function calling another
	Queue    = "queue"    // a message on an event subject
	Schedule = "schedule" // a tick of a cron schedule
	Replay   = "replay"   // a dead letter sent again by an operator
	Object   = "object"   // a change to an object bucket
)

// ErrTooLarge is what an [Invocation]'s Body returns for a body over the
// limit it was given.
var ErrTooLarge = errors.New("body over its limit")

// Invocation is one request to run a function, as a trigger hands it over.
type Invocation struct {
	ID       string // the invocation id; NewID makes one
	Function string
	Trigger  string // HTTP, Call, Queue, Schedule, Object or Replay
	// Source is where the invocation comes from: the caller's address for
	// HTTP and calls, the subject or schedule for events.
	Source    string
	UserAgent string
	From      *host.Invocation // the calling function's invocation, for Call

	// Invalid, if set, is a refusal the trigger found in its input before
	// the function was looked up (a request target that cannot be handed
	// on as sent): it is answered once the function is known, so the
	// refusal is audited against it.
	Invalid *Problem

	// Identify checks the caller against the function and returns the
	// identity REMOTE_USER shows ("" for anonymous), or a refusal. It is
	// the trigger's own step: an API key or JWT for HTTP, the callee's
	// callers list for a call, the function's declared trigger for an
	// event. Nil refuses every caller.
	Identify func(ctx context.Context, fn *registry.Loaded) (user string, no *Problem)

	// The request as CGI presents it.
	Method, PathInfo, RawPath, RawQuery, Proto, Host string
	Header                                           http.Header

	// Body returns the request body, at most limit bytes, or ErrTooLarge;
	// nil is an empty body. It is called once, after the rate limits.
	Body func(limit int64) ([]byte, error)

	// NoInput marks an invocation Moat itself made that carries no input
	// from anyone (a schedule's tick): the function's input content types
	// and schema, which say what callers may send, do not apply.
	NoInput bool
}

// viaHTTP reports whether the invocation came as an HTTP request, to which
// the function's http section applies.
func (inv *Invocation) viaHTTP() bool { return inv.Trigger == HTTP || inv.Trigger == Call }

// Result is what came of an invocation: the function's response, or the
// problem Moat answers with instead.
type Result struct {
	Status  int
	Header  http.Header // the function's response headers
	Body    []byte
	Problem *Problem // set when the function did not answer
	// Version is the version of the function that was found.
	Version string
	Took    time.Duration
}

// Problem is a refusal or a failed run, as an RFC 9457 problem document
// and, for a trigger that retries, what it should do.
type Problem struct {
	Status int
	// Reason is the refusal's reason as metrics and the audit trail name
	// it ("auth", "input", "rate", ...); "" for a run that failed.
	Reason        string
	Title, Detail string
	Errors        any         // specific errors, e.g. schema failures
	Header        http.Header // headers to answer with: Allow, WWW-Authenticate, Retry-After
	// RetryAfter, on an admission refusal, is when trying again may pass.
	RetryAfter time.Duration
}

// Admission reports whether p is a refusal by the limits (rate,
// concurrency, capacity, budget): one that passes if tried again later.
func (p *Problem) Admission() bool {
	return p != nil && admissionReasons[p.Reason]
}

var admissionReasons = map[string]bool{
	admit.ReasonRate: true, admit.ReasonCallerRate: true, admit.ReasonBusy: true,
	admit.ReasonCapacity: true, admit.ReasonBudget: true, admit.ReasonNodeBudget: true,
}

// Reasons of refusals the pipeline makes itself, besides admission's.
const (
	ReasonNotFound    = "not_found"
	ReasonDisabled    = "disabled"
	ReasonMethod      = "method"
	ReasonBody        = "body"
	ReasonContentType = "content_type"
	ReasonInput       = "input"
)

// functions is what the pipeline needs from the registry.
type functions interface {
	Acquire(ctx context.Context, fn string) (*registry.Loaded, error)
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
}

// Pipeline runs invocations. It is safe for concurrent use.
type Pipeline struct {
	log    *slog.Logger
	fns    functions
	admit  admission
	budget budgets
	rec    recorder
	audit  auditLog
	logs   logSink
	cfg    Config
	now    func() time.Time
	host   hostCalls // nil: every host call is refused
	quiet  *logcap.Limiter
}

// New returns a Pipeline.
func New(log *slog.Logger, fns functions, adm admission, bud budgets, rec recorder, aud auditLog, logs logSink, cfg Config) *Pipeline {
	return &Pipeline{
		log: log.With("component", "pipeline"), fns: fns, admit: adm, budget: bud, rec: rec, audit: aud, logs: logs, cfg: cfg,
		now: time.Now,
		// The lines a stranger's refused request causes: one a second
		// per source and message (docs/audit.md).
		quiet: logcap.New(time.Second, 4096),
	}
}

// SetHost makes h serve the host calls of invocations. Call it before
// running any.
func (p *Pipeline) SetHost(h hostCalls) { p.host = h }

// Quiet is the limiter of log lines that strangers' requests cause, for the
// triggers' own lines.
func (p *Pipeline) Quiet() *logcap.Limiter { return p.quiet }

// run is one invocation on its way through the steps.
type run struct {
	inv     *Invocation
	fn      *registry.Loaded
	user    string // REMOTE_USER
	body    []byte
	settle  func(time.Duration)
	release func()
	// logEntry is the run's log, kept when it logged or failed.
	logEntry *fnlog.Entry
}

// step is one stage of the pipeline: it refuses, or lets the run go on.
type step func(p *Pipeline, ctx context.Context, r *run) *Problem

// steps are the stages before the run, in order. Method expressions, so
// that a run allocates no closures for them.
var steps = []step{
	(*Pipeline).checkInvalid,  // what the trigger found wrong in its input
	(*Pipeline).checkDisabled, // a function an operator disabled
	(*Pipeline).identify,      // who calls: the trigger's check of the caller
	(*Pipeline).limitRate,     // the function's and the caller's rate
	(*Pipeline).checkMethod,   // the methods of the function's http section
	(*Pipeline).readBody,      // within the function's body limit
	(*Pipeline).validate,      // content type and input schema
	(*Pipeline).reserve,       // the function's and the node's budgets
	(*Pipeline).admitRun,      // concurrency and the node's capacity
}

// Run takes inv through the pipeline and returns what came of it. It never
// returns nil.
func (p *Pipeline) Run(ctx context.Context, inv *Invocation) *Result {
	start := p.now()
	fn, err := p.fns.Acquire(ctx, inv.Function)
	if err != nil {
		no := p.missing(ctx, inv, err)
		return &Result{Status: no.Status, Problem: no}
	}
	defer fn.Release()
	r := &run{inv: inv, fn: fn}
	defer func() {
		if r.settle != nil {
			r.settle(0)
		}
		if r.release != nil {
			r.release()
		}
	}()
	for _, s := range steps {
		if no := s(p, ctx, r); no != nil {
			p.refused(ctx, r, no)
			return &Result{Status: no.Status, Problem: no, Version: fn.Version, Took: p.now().Sub(start)}
		}
	}
	res := p.execute(ctx, r)
	res.Version = fn.Version
	res.Took = p.now().Sub(start)
	p.record(ctx, r, res, start)
	return res
}

// missing answers an invocation of a function that cannot be run.
func (p *Pipeline) missing(ctx context.Context, inv *Invocation, err error) *Problem {
	if errors.Is(err, registry.ErrNotFound) {
		return &Problem{Status: http.StatusNotFound, Reason: ReasonNotFound, Title: "function not found", Detail: "no function is deployed as " + strconv.Quote(inv.Function)}
	}
	p.log.ErrorContext(ctx, "load function", slog.String("fn", inv.Function), slog.String("invocation_id", inv.ID), slog.Any("err", err))
	return &Problem{Status: http.StatusInternalServerError, Title: "function unavailable"}
}

func (p *Pipeline) checkInvalid(_ context.Context, r *run) *Problem { return r.inv.Invalid }

func (p *Pipeline) checkDisabled(_ context.Context, r *run) *Problem {
	if r.fn.Disabled == "" {
		return nil
	}
	return &Problem{Status: http.StatusServiceUnavailable, Reason: ReasonDisabled, Title: "function disabled", Detail: r.fn.Name + " is disabled: " + r.fn.Disabled}
}

func (p *Pipeline) identify(ctx context.Context, r *run) *Problem {
	if r.inv.Identify == nil {
		return &Problem{Status: http.StatusForbidden, Reason: "auth", Title: "forbidden", Detail: "no caller may invoke " + r.fn.Name + " this way"}
	}
	user, no := r.inv.Identify(ctx, r.fn)
	r.user = user
	return no
}

// caller is who the per-caller rate counts: the identity, or where an
// anonymous request comes from.
func (r *run) caller() string {
	if !r.inv.viaHTTP() {
		if r.user != "" {
			return r.user
		}
		return r.inv.Trigger + ":" + r.inv.Source
	}
	from := r.inv.From
	if r.user == "" || from != nil && from.User == "" {
		// Nobody authenticated at the start of the chain: tell callers
		// apart by where they come from.
		return strings.TrimSpace(r.user + " " + auth.Block(r.inv.Source))
	}
	return r.user
}

func (p *Pipeline) limitRate(_ context.Context, r *run) *Problem {
	no := p.admit.Rate(r.fn.Name, r.fn.Version, r.fn.Manifest.Limits, r.caller())
	return admissionProblem(r.fn.Name, no)
}

func (p *Pipeline) checkMethod(_ context.Context, r *run) *Problem {
	m := r.fn.Manifest
	if !r.inv.viaHTTP() || m.AllowsMethod(r.inv.Method) {
		return nil
	}
	return &Problem{Status: http.StatusMethodNotAllowed, Reason: ReasonMethod, Title: "method not allowed",
		Detail: r.inv.Method + " is not accepted by " + r.fn.Name,
		Header: http.Header{"Allow": {strings.Join(m.Methods(), ", ")}}}
}

func (p *Pipeline) readBody(_ context.Context, r *run) *Problem {
	if r.inv.Body == nil {
		return nil
	}
	limit := r.fn.Manifest.Limits.Body
	body, err := r.inv.Body(int64(limit))
	switch {
	case errors.Is(err, ErrTooLarge):
		return &Problem{Status: http.StatusRequestEntityTooLarge, Reason: ReasonBody, Title: "request body too large",
			Detail: fmt.Sprintf("the body limit of %s is %s", r.fn.Name, limit)}
	case err != nil:
		return &Problem{Status: http.StatusBadRequest, Reason: ReasonBody, Title: "unreadable request body"}
	}
	r.body = body
	return nil
}

// validate applies the function's declared input: its content types and
// its schema.
func (p *Pipeline) validate(ctx context.Context, r *run) *Problem {
	fn := r.fn
	if r.inv.NoInput {
		if len(r.body) > 0 {
			return &Problem{Status: http.StatusBadRequest, Reason: ReasonInput, Title: "invalid input", Detail: "an invocation without input came with a body"}
		}
		return nil
	}
	if types := fn.Manifest.Input.ContentTypes; len(types) > 0 {
		mt, _, err := mime.ParseMediaType(r.inv.Header.Get("Content-Type"))
		if err != nil || !slices.Contains(types, mt) {
			return &Problem{Status: http.StatusUnsupportedMediaType, Reason: ReasonContentType, Title: "unsupported media type",
				Detail: fn.Name + " accepts " + strings.Join(types, ", ")}
		}
	}
	if fn.Schema == nil {
		return nil
	}
	failures := fn.Schema.Check(r.body)
	if failures == nil {
		return nil
	}
	p.quiet.Log(ctx, p.log, slog.LevelInfo, r.inv.Source, "input refused", slog.String("fn", fn.Name), slog.String("invocation_id", r.inv.ID),
		slog.String("trigger", r.inv.Trigger), slog.String("source", r.inv.Source), slog.Int("failures", len(failures)))
	return &Problem{Status: http.StatusBadRequest, Reason: ReasonInput, Title: "invalid input",
		Detail: "the body does not match the input schema of " + fn.Name, Errors: failures}
}

func (p *Pipeline) reserve(ctx context.Context, r *run) *Problem {
	m := r.fn.Manifest
	settle, no := p.budget.Reserve(ctx, r.fn.Name, m.Budget, m.Limits)
	if no != nil {
		return admissionProblem(r.fn.Name, no)
	}
	r.settle = settle
	return nil
}

func (p *Pipeline) admitRun(ctx context.Context, r *run) *Problem {
	release, no := p.admit.Run(ctx, r.fn.Name, r.fn.Version, r.fn.Manifest.Limits)
	if no != nil {
		return admissionProblem(r.fn.Name, no)
	}
	r.release = release
	return nil
}

// admissionProblem turns admission's refusal into a problem.
func admissionProblem(name string, no *admit.Refusal) *Problem {
	if no == nil {
		return nil
	}
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
	return &Problem{Status: no.Status, Reason: no.Reason, Title: title, Detail: detail, RetryAfter: no.RetryAfter,
		Header: http.Header{"Retry-After": {strconv.Itoa(int(math.Ceil(max(no.RetryAfter.Seconds(), 1))))}}}
}

// execute runs the admitted invocation in a fresh instance.
func (p *Pipeline) execute(ctx context.Context, r *run) *Result {
	inv, fn, m := r.inv, r.fn, r.fn.Manifest
	remote := "" // an event comes from no address
	if inv.viaHTTP() {
		remote = inv.Source
	}
	env := cgi.Env(m.Env, &cgi.Request{
		Method: inv.Method, PathInfo: inv.PathInfo, RawPath: inv.RawPath, RawQuery: inv.RawQuery, Proto: inv.Proto,
		Host: inv.Host, RemoteAddr: remote, RemoteUser: r.user, ContentLen: len(r.body), Header: inv.Header,
		Trigger: inv.Trigger,
	})
	// The host side of the invocation, for a module that makes host calls
	// or a call from a function (whose secrets its logs are scrubbed of).
	var hinv *host.Invocation
	if fn.Module.UsesHost() || inv.From != nil {
		hinv = &host.Invocation{Function: fn.Name, Version: fn.Version, ID: inv.ID, User: r.user, Source: inv.Source, Perms: &m.Permissions}
		if inv.From != nil {
			hinv.Depth, hinv.Known = inv.From.Depth+1, inv.From.Secrets()
		}
	}
	req := &sandbox.Request{
		Args:     []string{fn.Name},
		Env:      env,
		Stdin:    r.body,
		Timeout:  m.Limits.Timeout,
		MaxOut:   int(m.Limits.Response),
		MaxLog:   p.cfg.MaxLog,
		MaxLines: p.cfg.MaxLogLines,
	}
	if p.host != nil && hinv != nil {
		req.Host = p.host.Serve(hinv)
	}
	out, runErr := fn.Module.Run(ctx, req)
	if hinv != nil {
		hinv.Close() // objects left open: reads closed, writes never committed discarded
	}
	r.release()
	r.release = nil
	r.settle(out.Took)
	r.settle = nil

	res := &Result{}
	if runErr == nil {
		var resp *cgi.Response
		if resp, runErr = cgi.ParseResponse(out.Stdout); runErr == nil {
			res.Status, res.Header, res.Body = resp.Status, resp.Header, resp.Body
		}
	}
	if runErr != nil {
		res.Problem = failure(fn.Name, runErr)
		res.Status = res.Problem.Status
	}
	// An invocation whose log went over the caps leaves an entry saying
	// how much was dropped, even when nothing else was kept.
	if len(out.Log) > 0 || out.Dropped > 0 || runErr != nil {
		e := &fnlog.Entry{
			Time: p.now().UTC(), Function: fn.Name, Version: fn.Version, InvocationID: inv.ID,
			Status: res.Status, Lines: out.Log, Dropped: out.Dropped,
		}
		if runErr != nil {
			e.Error = runErr.Error()
		}
		if hinv != nil {
			e.Lines = hinv.Redact(e.Lines)
		}
		r.logEntry = e
	}
	return res
}

// failure is the problem of a failed run. The caller learns the limit hit,
// or only that the function failed and the invocation id: the guest's
// stderr and stack stay in the function's log.
func failure(name string, err error) *Problem {
	var lim *sandbox.LimitError
	switch {
	case errors.As(err, &lim) && lim.Limit == "timeout":
		return &Problem{Status: http.StatusGatewayTimeout, Title: "function timed out", Detail: name + " exceeded its timeout of " + lim.Cap}
	case errors.As(err, &lim):
		return &Problem{Status: http.StatusBadGateway, Title: "function exceeded a limit", Detail: name + " exceeded its " + lim.Limit + " limit of " + lim.Cap}
	case errors.Is(err, context.Canceled):
		return &Problem{Status: StatusGone, Title: "caller gone"} // nobody reads the answer
	case errors.Is(err, cgi.ErrMalformed):
		return &Problem{Status: http.StatusBadGateway, Title: "function failed", Detail: name + " wrote a malformed CGI response; see moat logs " + name}
	default:
		return &Problem{Status: http.StatusBadGateway, Title: "function failed", Detail: name + " failed; see moat logs " + name}
	}
}

// StatusGone is the status recorded for a run whose caller went away
// before it ended (nginx's 499).
const StatusGone = 499

// record meters, audits and logs a run.
func (p *Pipeline) record(ctx context.Context, r *run, res *Result, start time.Time) {
	inv, fn := r.inv, r.fn
	took := res.Took
	p.rec.Invocation(fn.Name, res.Status, took, int64(fn.Manifest.Limits.Memory))
	outcome := audit.OK
	if res.Status >= 500 {
		outcome = audit.Failed
	}
	p.audit.Append(ctx, audit.Record{
		Action: "invoke", Target: fn.Name, Version: fn.Version, Outcome: outcome, Actor: r.user, Trigger: inv.Trigger,
		Source: inv.Source, UserAgent: truncate(inv.UserAgent, 200), InvocationID: inv.ID, Status: res.Status,
		TookMS: float64(took.Microseconds()) / 1000, Memory: fn.Manifest.Limits.Memory.String(),
	}, false)
	if e := r.logEntry; e != nil {
		e.Time, e.TookMS = start.UTC(), float64(took.Microseconds())/1000
		p.logs.Append(e)
	}
	p.log.DebugContext(ctx, "invocation done",
		slog.String("fn", fn.Name), slog.String("invocation_id", inv.ID), slog.String("trigger", inv.Trigger),
		slog.Int("status", res.Status), slog.Duration("took", took))
}

// refused meters and audits an invocation refused before it ran.
func (p *Pipeline) refused(ctx context.Context, r *run, no *Problem) {
	p.rec.Refusal(r.fn.Name, no.Reason)
	p.audit.Append(ctx, audit.Record{
		Action: "refuse", Target: r.fn.Name, Outcome: audit.Refused, Reason: no.Reason, Actor: r.user,
		Source: r.inv.Source, UserAgent: truncate(r.inv.UserAgent, 200), InvocationID: r.inv.ID, Trigger: r.inv.Trigger,
	}, false)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// NewID returns a fresh invocation id.
func NewID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
