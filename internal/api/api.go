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
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/fnlog"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/problem"
	"github.com/moatfn/moat/internal/registry"
	"github.com/moatfn/moat/internal/sandbox"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1/"

// MaxDeploy caps a deploy request's body.
const MaxDeploy = 128 << 20

type functions interface {
	Deploy(ctx context.Context, manifestSrc []byte, files map[string][]byte, actor string) (*registry.Version, error)
	Get(ctx context.Context, fn string) (*registry.Function, error)
	List(ctx context.Context) ([]*registry.Function, error)
	Rollback(ctx context.Context, fn, version string) (*registry.Version, error)
	Remove(ctx context.Context, fn string) error
}

type logs interface {
	Tail(ctx context.Context, function string, n int, follow bool, fn func(*fnlog.Entry) error) error
}

type authorizer interface {
	Check(r *http.Request) bool
}

// API serves the control API. It is safe for concurrent use.
type API struct {
	log  *slog.Logger
	fns  functions
	logs logs
	auth authorizer
	mux  *http.ServeMux
	// stopping ends when the node drains: streams that would never end on
	// their own (logs --follow) end then, so that draining waits only for
	// invocations.
	stopping context.Context
}

var _ http.Handler = (*API)(nil)

// New returns the API handler. Log streams end when stopping does.
func New(log *slog.Logger, fns functions, logs logs, auth authorizer, stopping context.Context) *API {
	a := &API{log: log.With("component", "api"), fns: fns, logs: logs, auth: auth, mux: http.NewServeMux(), stopping: stopping}
	a.mux.HandleFunc("GET /api/v1/functions", a.list)
	a.mux.HandleFunc("POST /api/v1/functions", a.deploy)
	a.mux.HandleFunc("GET /api/v1/functions/{name}", a.get)
	a.mux.HandleFunc("DELETE /api/v1/functions/{name}", a.remove)
	a.mux.HandleFunc("POST /api/v1/functions/{name}/rollback", a.rollback)
	a.mux.HandleFunc("GET /api/v1/functions/{name}/logs", a.tail)
	a.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		Problem(w, http.StatusNotFound, "no such route", r.Method+" "+r.URL.Path)
	})
	return a
}

// ServeHTTP checks the token, then routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !a.auth.Check(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="moat"`)
		a.log.WarnContext(r.Context(), "authentication failed",
			slog.String("remote_addr", r.RemoteAddr), slog.String("method", r.Method), slog.String("path", r.URL.Path))
		Problem(w, http.StatusUnauthorized, "unauthorized", "a valid token is required: Authorization: Bearer TOKEN")
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	fns, err := a.fns.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]Summary, 0, len(fns))
	for _, f := range fns {
		out = append(out, summarize(f))
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
}

func summarize(f *registry.Function) Summary {
	s := Summary{Name: f.Name, Version: f.Active, Versions: len(f.Versions)}
	if v := f.ActiveVersion(); v != nil {
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
	if err := a.fns.Remove(r.Context(), name); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "function removed", slog.String("fn", name), slog.String("remote_addr", r.RemoteAddr))
	w.WriteHeader(http.StatusNoContent)
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
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "function rolled back", slog.String("fn", r.PathValue("name")), slog.String("version", v.ID), slog.String("remote_addr", r.RemoteAddr))
	writeJSON(w, http.StatusOK, v)
}

// deploy takes multipart/form-data: a part "manifest" (moat.yaml) and a
// part "file:PATH" for each file the manifest names.
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
	var src []byte
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
	v, err := a.fns.Deploy(r.Context(), src, files, "admin")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "function deployed",
		slog.String("fn", v.Manifest.Name), slog.String("version", v.ID), slog.String("remote_addr", r.RemoteAddr),
		slog.Duration("compile", v.CompileTook))
	writeJSON(w, http.StatusCreated, v)
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
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.stopping, cancel)()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	err := a.logs.Tail(ctx, name, n, follow, func(e *fnlog.Entry) error {
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
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var merr *manifest.Error
	switch {
	case errors.Is(err, registry.ErrNotFound):
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
