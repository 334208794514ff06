package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/secrets"
)

type secretStore interface {
	Set(ctx context.Context, name string, value []byte, actor string) error
	List(ctx context.Context) ([]secrets.Meta, error)
	Delete(ctx context.Context, name string) error
	SetFunctions(ctx context.Context, name string, functions []string, actor string) error
}

type bucketLister interface {
	Buckets(ctx context.Context) ([]string, error)
}

type grantReader interface {
	Used(ctx context.Context, function string) (map[string]time.Time, error)
}

// Rotation re-wraps every data key under a new master key and returns how
// many it re-wrapped and the new key's id.
type Rotation func(ctx context.Context) (int, string, error)

// setSecret answers PUT /api/v1/secrets/{name}: the body is the value. The
// value is never logged, recorded or returned.
func (a *API) setSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := manifest.CheckSecretName(name); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, secrets.MaxValue))
	if err != nil {
		Problem(w, http.StatusRequestEntityTooLarge, "secret too large", "a secret is at most 64KiB")
		return
	}
	if len(value) == 0 {
		Problem(w, http.StatusBadRequest, "bad request", "the value is empty")
		return
	}
	err = a.secrets.Set(r.Context(), name, value, identity(r).User())
	clear(value)
	a.done(w, r, "secret.set", name, "", err, func() {
		a.log.InfoContext(r.Context(), "secret set", slog.String("name", name), slog.String("remote_addr", r.RemoteAddr))
		w.WriteHeader(http.StatusNoContent)
	})
}

// SecretFunctions is the body of PUT /api/v1/secrets/{name}/functions.
type SecretFunctions struct {
	Functions []string `json:"functions"`
}

// setSecretFunctions sets the functions allowed to be granted a secret:
// the operator's boundary, so an admin's alone, and audited with the list.
func (a *API) setSecretFunctions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := manifest.CheckSecretName(name); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return
	}
	var req SecretFunctions
	if err := decodeJSON(r, &req); err != nil {
		Problem(w, http.StatusBadRequest, "bad request", `the body must be {"functions":["name",...]}`)
		return
	}
	err := a.secrets.SetFunctions(r.Context(), name, req.Functions, identity(r).User())
	rec := outcome("secret.functions", name, err)
	rec.Resource = truncate(strings.Join(req.Functions, ","), 300)
	if err != nil {
		rec.Reason = truncate(err.Error(), 300)
	}
	aerr := a.record(r, rec, true)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		Problem(w, http.StatusNotFound, "not found", err.Error())
	case err != nil:
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
	case aerr != nil:
		Problem(w, http.StatusInternalServerError, "not recorded", "the list was stored but its audit record was not; see the node's log")
	default:
		a.log.InfoContext(r.Context(), "secret functions set", slog.String("name", name), slog.String("remote_addr", r.RemoteAddr))
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) {
	list, err := a.secrets.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []secrets.Meta{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *API) removeSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.secrets.Delete(r.Context(), name)
	if errors.Is(err, secrets.ErrNotFound) {
		Problem(w, http.StatusNotFound, "not found", "no secret named "+truncate(name, 130))
		return
	}
	a.done(w, r, "secret.remove", truncate(name, 130), "", err, func() {
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *API) rotateMaster(w http.ResponseWriter, r *http.Request) {
	n, id, err := a.rotate(r.Context())
	a.done(w, r, "secret.rotate-master", id, "", err, func() {
		a.log.InfoContext(r.Context(), "master key rotated", slog.String("master_key_id", id), slog.Int("data_keys", n))
		writeJSON(w, http.StatusOK, map[string]any{"master_key_id": id, "data_keys_rewrapped": n})
	})
}

// Bucket is a KV bucket as `moat kv ls` shows it.
type Bucket struct {
	Name   string            `json:"name"`
	Grants map[string]string `json:"grants"` // function -> read | write | read-write
	Exists bool              `json:"exists"`
}

func (a *API) listBuckets(w http.ResponseWriter, r *http.Request) {
	names, err := a.buckets.Buckets(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	fns, err := a.fns.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	byName := map[string]*Bucket{}
	for _, n := range names {
		byName[n] = &Bucket{Name: n, Grants: map[string]string{}, Exists: true}
	}
	for _, f := range fns {
		v := f.ActiveVersion()
		if v == nil {
			continue
		}
		for b, access := range v.Manifest.Permissions.KV {
			if byName[b] == nil {
				byName[b] = &Bucket{Name: b, Grants: map[string]string{}}
			}
			byName[b].Grants[f.Name] = access
		}
	}
	out := make([]Bucket, 0, len(byName))
	for _, b := range byName {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(x, y Bucket) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	writeJSON(w, http.StatusOK, out)
}

// GrantUse is one grant of a function and when it was last used; a nil
// LastUsed means never (since grant use was first recorded).
type GrantUse struct {
	Grant    string     `json:"grant"`
	LastUsed *time.Time `json:"last_used"`
}

// grantsOf lists m's grants, as host.Grants names them.
func grantsOf(m *manifest.Manifest) []string {
	var out []string
	p := m.Permissions
	for b, access := range p.KV {
		out = append(out, "kv:"+b+":"+access)
	}
	for b, access := range p.Objects {
		out = append(out, "objects:"+b+":"+access)
	}
	for _, s := range p.Secrets {
		out = append(out, "secret:"+s)
	}
	for _, e := range p.Egress {
		out = append(out, "egress:"+e)
	}
	for _, f := range p.Invoke {
		out = append(out, "invoke:"+f)
	}
	for _, s := range p.Publish {
		out = append(out, "publish:"+s)
	}
	slices.Sort(out)
	return out
}

func (a *API) grantUse(ctx context.Context, fn string, m *manifest.Manifest) []GrantUse {
	grants := grantsOf(m)
	if len(grants) == 0 {
		return nil
	}
	var used map[string]time.Time
	if a.grants != nil {
		used, _ = a.grants.Used(ctx, fn)
	}
	out := make([]GrantUse, 0, len(grants))
	for _, g := range grants {
		u := GrantUse{Grant: g}
		if t, ok := used[g]; ok {
			u.LastUsed = &t
		}
		out = append(out, u)
	}
	return out
}
