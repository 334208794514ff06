package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/objstore"
)

// objectBuckets is what the object routes need from the node.
type objectBuckets interface {
	Buckets(ctx context.Context) ([]string, error)
	List(ctx context.Context, bucket, prefix string) ([]objstore.Info, error)
	Get(ctx context.Context, bucket, name string) (*objstore.Object, error)
	Put(ctx context.Context, bucket, name, contentType string, r io.Reader, max int64) (*objstore.Info, error)
	Delete(ctx context.Context, bucket, name string) error
	MaxObject() int64
}

// An object's name travels in ?name=, never in the path: a path is
// cleaned (and "a/../b" redirected to "b") before any handler sees it, and
// a name is data that must arrive as it was sent, to be refused whole.

// haveObjects answers 503 when the node serves no object buckets.
func (a *API) haveObjects(w http.ResponseWriter) bool {
	if a.objects == nil {
		Problem(w, http.StatusServiceUnavailable, "unavailable", "object buckets are not available on this node")
	}
	return a.objects != nil
}

func (a *API) objectBucket(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !a.haveObjects(w) {
		return "", false
	}
	b := r.PathValue("bucket")
	if !manifest.ValidName(b) {
		Problem(w, http.StatusBadRequest, "bad request", fmt.Sprintf("%q is not a bucket name", truncate(b, 80)))
		return "", false
	}
	return b, true
}

// objectName reads the bucket and the object's name of a request for
// action; a name refused is audited, since a caller probing names (a path
// out of the bucket, a newline for a log) is worth seeing.
func (a *API) objectName(w http.ResponseWriter, r *http.Request, action string) (string, string, bool) {
	b, ok := a.objectBucket(w, r)
	if !ok {
		return "", "", false
	}
	q := r.URL.Query()
	if len(q["name"]) != 1 {
		Problem(w, http.StatusBadRequest, "bad request", "name the object once: ?name=NAME")
		return "", "", false
	}
	name := q.Get("name")
	if err := objstore.CheckName(name); err != nil {
		rec := audit.Record{Action: action, Target: b, Outcome: audit.Refused, Reason: truncate(err.Error(), 300),
			Resource: truncate(strconv.QuoteToASCII(truncate(name, 200)), 300)}
		a.record(r, rec, false)
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
		return "", "", false
	}
	return b, name, true
}

func (a *API) objectErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		Problem(w, http.StatusNotFound, "not found", err.Error()+"; a bucket comes into being with the first deploy that grants it")
	case errors.Is(err, objstore.ErrInvalid):
		Problem(w, http.StatusBadRequest, "bad request", err.Error())
	case errors.Is(err, objstore.ErrTooLarge):
		Problem(w, http.StatusRequestEntityTooLarge, "too large", err.Error())
	default:
		a.fail(w, r, err)
	}
}

func (a *API) listObjectBuckets(w http.ResponseWriter, r *http.Request) {
	if !a.haveObjects(w) {
		return
	}
	names, err := a.objects.Buckets(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, names)
}

func (a *API) listObjects(w http.ResponseWriter, r *http.Request) {
	b, ok := a.objectBucket(w, r)
	if !ok {
		return
	}
	list, err := a.objects.List(r.Context(), b, r.URL.Query().Get("prefix"))
	if err != nil {
		a.objectErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// getObject streams an object out. Its stored type goes in
// Moat-Content-Type, not Content-Type: the control API shares the
// functions' origin, and an uploaded page must not render there.
func (a *API) getObject(w http.ResponseWriter, r *http.Request) {
	b, name, ok := a.objectName(w, r, "object.get")
	if !ok {
		return
	}
	o, err := a.objects.Get(r.Context(), b, name)
	rec := outcome("object.get", b, err)
	rec.Resource = truncate(name, 300)
	if aerr := a.record(r, rec, false); aerr != nil && err == nil {
		o.Close()
		Problem(w, http.StatusInternalServerError, "not recorded", "the read could not be audited; see the node's log")
		return
	}
	if err != nil {
		a.objectErr(w, r, err)
		return
	}
	defer o.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Moat-Content-Type", o.ContentType)
	h.Set("Moat-Digest", o.Digest)
	h.Set("Content-Length", strconv.FormatInt(o.Size, 10))
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, o); errors.Is(err, objstore.ErrCorrupt) {
		// The status is sent; the cut-short body and the log tell. A
		// client that hung up early is not worth a line.
		a.log.ErrorContext(r.Context(), "object read", slog.String("bucket", b), slog.Any("err", err))
	}
}

func (a *API) putObject(w http.ResponseWriter, r *http.Request) {
	b, name, ok := a.objectName(w, r, "object.put")
	if !ok {
		return
	}
	max := a.objects.MaxObject()
	if r.ContentLength > max {
		Problem(w, http.StatusRequestEntityTooLarge, "too large", fmt.Sprintf("an object is at most %d bytes on this node", max))
		return
	}
	// Put stops reading past max itself (ErrTooLarge).
	info, err := a.objects.Put(r.Context(), b, name, r.Header.Get("Content-Type"), r.Body, max)
	a.objectDone(w, r, "object.put", b, name, err, func() { writeJSON(w, http.StatusCreated, info) })
}

// objectDone records a change to an object (synced, as control actions
// are) and answers: ok when both the change and its record were made.
func (a *API) objectDone(w http.ResponseWriter, r *http.Request, action, bucket, name string, err error, ok func()) {
	rec := outcome(action, bucket, err)
	rec.Resource = truncate(name, 300)
	aerr := a.record(r, rec, true)
	switch {
	case err != nil:
		a.objectErr(w, r, err)
	case aerr != nil:
		Problem(w, http.StatusInternalServerError, "not recorded", action+" was applied but its audit record was not stored; see the node's log")
	default:
		ok()
	}
}

func (a *API) removeObject(w http.ResponseWriter, r *http.Request) {
	b, name, ok := a.objectName(w, r, "object.delete")
	if !ok {
		return
	}
	err := a.objects.Delete(r.Context(), b, name)
	a.objectDone(w, r, "object.delete", b, name, err, func() { w.WriteHeader(http.StatusNoContent) })
}
