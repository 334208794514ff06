package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/manifest"
)

// eventBus is what the event routes need.
type eventBus interface {
	Publish(ctx context.Context, subject string, ev *cloudevent.Event, publisher string) (*events.Published, error)
	Letters(ctx context.Context, fn string) ([]*events.Letter, int, error)
	Letter(ctx context.Context, fn string, id uint64) (*events.Letter, error)
	Replay(ctx context.Context, fn string, id uint64, actor string) (*events.Published, error)
	Purge(ctx context.Context, fn string) (int, error)
	Triggers(ctx context.Context, fn string) ([]events.TriggerState, error)
}

// publish answers POST /api/v1/events/{subject}: the body is the event's
// data and the request a CloudEvent in binary mode, every attribute
// optional (id: a fresh one, source: /api/ACTOR, type: the subject).
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	if err := manifest.CheckSubject(subject); err != nil {
		Problem(w, http.StatusBadRequest, "bad subject", err.Error())
		return
	}
	if id := identity(r); id.Role == auth.RolePublisher && !slices.ContainsFunc(id.Subjects, func(p string) bool { return manifest.SubjectMatches(p, subject) }) {
		a.done(w, r, "event.publish", subject, "", errNotYourSubject, func() {})
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, events.MaxData))
	if err != nil {
		Problem(w, http.StatusRequestEntityTooLarge, "event too large", fmt.Sprintf("event data is at most %d KiB", events.MaxData>>10))
		return
	}
	actor := identity(r).User()
	h := r.Header.Clone()
	defaults := events.NewEvent("/api/"+strings.ReplaceAll(actor, ":", "/"), "", subject, "", nil)
	for k, v := range map[string]string{"Ce-Id": defaults.ID, "Ce-Source": defaults.Source, "Ce-Type": subject,
		"Ce-Specversion": cloudevent.SpecVersion, "Ce-Time": defaults.Time} {
		if h.Get(k) == "" {
			h.Set(k, cloudevent.Encode(v))
		}
	}
	if len(data) == 0 {
		h.Del("Content-Type") // no data, no data content type
	}
	ev, err := cloudevent.FromHeader(h, data)
	if err != nil {
		Problem(w, http.StatusBadRequest, "malformed CloudEvent", err.Error())
		return
	}
	pub, err := a.events.Publish(r.Context(), subject, ev, actor)
	if errors.Is(err, events.ErrNoListener) {
		Problem(w, http.StatusNotFound, "no listener", "no function's trigger takes "+subject+": the event would never be handled")
		return
	}
	if errors.Is(err, events.ErrFull) {
		Problem(w, http.StatusServiceUnavailable, "event store full", "the node keeps no more events until triggers catch up")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.done(w, r, "event.publish", subject, "", nil, func() {
		writeJSON(w, http.StatusAccepted, pub)
	})
}

// errNotYourSubject refuses a publisher key a subject its key does not name.
var errNotYourSubject = fmt.Errorf("%w: this publisher key may not publish on the subject", ErrForbidden)

// Letters is the answer of GET /api/v1/functions/{name}/dlq.
type Letters struct {
	Total   int              `json:"total"` // may exceed the letters listed
	Letters []*events.Letter `json:"letters"`
}

func (a *API) listLetters(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	letters, total, err := a.events.Letters(r.Context(), name)
	if err != nil {
		a.letterFail(w, r, err)
		return
	}
	for _, l := range letters {
		if l.Event != nil {
			e := *l.Event
			e.Data = nil // a listing shows no data: moat dlq show does
			l.Event = &e
		}
	}
	writeJSON(w, http.StatusOK, Letters{Total: total, Letters: letters})
}

func letterID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%w: a dead letter's id is a positive whole number", ErrBadRequest)
	}
	return id, nil
}

func (a *API) showLetter(w http.ResponseWriter, r *http.Request) {
	id, err := letterID(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	l, err := a.events.Letter(r.Context(), r.PathValue("name"), id)
	if err != nil {
		a.letterFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// Replay is the body of POST /api/v1/functions/{name}/dlq/replay.
type Replay struct {
	IDs []uint64 `json:"ids,omitempty"`
	All bool     `json:"all,omitempty"`
}

// Replayed is its answer.
type Replayed struct {
	Replayed []*events.Published `json:"replayed"`
}

func (a *API) replay(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req Replay
	if err := decodeJSON(r, &req); err != nil || req.All == (len(req.IDs) > 0) || slices.Contains(req.IDs, 0) {
		Problem(w, http.StatusBadRequest, "bad request", `want {"ids": [ID, ...]} or {"all": true}`)
		return
	}
	if len(req.IDs) > events.MaxList {
		Problem(w, http.StatusBadRequest, "bad request", fmt.Sprintf("at most %d dead letters at once", events.MaxList))
		return
	}
	ids := req.IDs
	if req.All {
		letters, _, err := a.events.Letters(r.Context(), name)
		if err != nil {
			a.letterFail(w, r, err)
			return
		}
		for _, l := range letters {
			ids = append(ids, l.ID)
		}
	}
	out := Replayed{Replayed: []*events.Published{}}
	var replayed []string
	var err error
	for _, id := range ids {
		var pub *events.Published
		if pub, err = a.events.Replay(r.Context(), name, id, identity(r).User()); err != nil {
			err = fmt.Errorf("dead letter %d: %w", id, err)
			break
		}
		out.Replayed = append(out.Replayed, pub)
		replayed = append(replayed, strconv.FormatUint(id, 10))
	}
	rec := auditRecordFor("dlq.replay", name, strings.Join(replayed, ","), err)
	if aerr := a.record(r, rec, true); aerr != nil && err == nil {
		Problem(w, http.StatusInternalServerError, "not recorded", "replayed, but the audit record could not be stored; see the node's log")
		return
	}
	if err != nil {
		a.letterFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) purgeLetters(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	n, err := a.events.Purge(r.Context(), name)
	if errors.Is(err, events.ErrNoLetter) {
		a.letterFail(w, r, err)
		return
	}
	a.done(w, r, "dlq.purge", name, "", err, func() {
		a.log.InfoContext(r.Context(), "dead letters purged", slog.String("fn", name), slog.Int("count", n))
		writeJSON(w, http.StatusOK, map[string]int{"purged": n})
	})
}

func (a *API) triggers(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := a.fns.Get(r.Context(), name); err != nil {
		a.fail(w, r, err)
		return
	}
	ts, err := a.events.Triggers(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (a *API) letterFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, events.ErrNoLetter):
		Problem(w, http.StatusNotFound, "not found", err.Error())
	case errors.Is(err, events.ErrNoListener):
		Problem(w, http.StatusConflict, "no trigger", err.Error())
	default:
		a.fail(w, r, err)
	}
}

// auditRecordFor is the record of an action on target that names resource.
func auditRecordFor(action, target, resource string, err error) audit.Record {
	rec := audit.Record{Action: action, Target: target, Resource: resource, Outcome: audit.OK}
	if err != nil {
		rec.Outcome, rec.Reason = audit.Failed, truncate(err.Error(), 300)
	}
	return rec
}

// needEvents answers 503 on a node without an event bus.
func (a *API) needEvents(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.events == nil {
			Problem(w, http.StatusServiceUnavailable, "unavailable", "this node runs no event triggers")
			return
		}
		h(w, r)
	}
}
