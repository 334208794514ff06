package api

import (
	"fmt"
	"github.com/moatfn/moat/internal/duration"
	"log/slog"
	"net/http"
	"time"

	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/manifest"
)

// KeyRequest is the body of POST /api/v1/keys.
type KeyRequest struct {
	Role      string   `json:"role"`
	Functions []string `json:"functions,omitempty"`
	Subjects  []string `json:"subjects,omitempty"` // a publisher's subject patterns
	Expires   string   `json:"expires,omitempty"`  // "30d", "12h", "90m"; "" never
	Note      string   `json:"note,omitempty"`
}

// NewKey is the answer to a key creation: the only time the token is shown.
type NewKey struct {
	auth.Key
	Token string `json:"token"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := decodeJSON(r, &req); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", "the body must be a JSON object: role, functions, subjects, expires, note")
		return
	}
	ttl, err := ParseTTL(req.Expires)
	if err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	for _, fn := range req.Functions {
		if !manifest.ValidName(fn) {
			Problem(w, http.StatusBadRequest, "bad request", fmt.Sprintf("functions: %.70q is not a function name", fn))
			return
		}
	}
	for _, s := range req.Subjects {
		if err := manifest.CheckSubjectPattern(s); err != nil {
			Problem(w, http.StatusBadRequest, "bad request", "subjects: "+err.Error())
			return
		}
	}
	key, token, err := a.keys.Create(r.Context(), req.Role, req.Functions, req.Subjects, ttl, req.Note, identity(r).User())
	if err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	a.done(w, r, "key.create", key.ID, key.Role, nil, func() {
		a.log.InfoContext(r.Context(), "key created", slog.String("key_id", key.ID), slog.String("role", key.Role),
			slog.String("by", identity(r).User()), slog.String("remote_addr", r.RemoteAddr))
		key.Hash = ""
		writeJSON(w, http.StatusCreated, NewKey{Key: *key, Token: token})
	})
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.keys.List())
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := a.keys.Revoke(r.Context(), id)
	a.done(w, r, "key.revoke", truncate(id, 70), "", err, func() {
		a.log.InfoContext(r.Context(), "key revoked", slog.String("key_id", id),
			slog.String("by", identity(r).User()), slog.String("remote_addr", r.RemoteAddr))
		w.WriteHeader(http.StatusNoContent)
	})
}

// ParseTTL reads a key lifetime: a Go duration ("12h", "90m") or a number
// of days ("30d"). "" means no expiry. At most ten years.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := duration.Parse(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration like 30d, 2w or 12h", truncate(s, 40))
	}
	if d > 10*365*24*time.Hour {
		return 0, fmt.Errorf("expires %q: at most ten years", s)
	}
	return d, nil
}
