package supply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/store"
)

// ExceptionsBucket keeps the exceptions, one key per function and advisory.
const ExceptionsBucket = "moat_vuln_exceptions"

// MaxException is the longest an exception may run.
const MaxException = 366 * 24 * time.Hour

var advisoryID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,99}$`)

// ErrNoException reports an exception that does not exist.
var ErrNoException = errors.New("no such exception")

// Exception lets a function run with one advisory until a date, for a
// stated reason. It is audited when made and when removed.
type Exception struct {
	ID       string    `json:"id"` // the advisory or one of its aliases
	Function string    `json:"function"`
	Until    time.Time `json:"until"`
	Reason   string    `json:"reason"`
	By       string    `json:"by"`
	Created  time.Time `json:"created"`
}

// Check explains what is wrong with e as a new exception at now.
func (e *Exception) Check(now time.Time) error {
	switch {
	case !advisoryID.MatchString(e.ID):
		return fmt.Errorf("id %q is not an advisory id (like GO-2022-1059, GHSA-xxxx-xxxx-xxxx or CVE-2022-32149)", truncate(e.ID, 100))
	case !manifest.ValidName(e.Function):
		return fmt.Errorf("function %q is not a function name", truncate(e.Function, 100))
	case !e.Until.After(now):
		return errors.New("until must be in the future")
	case e.Until.Sub(now) > MaxException:
		return errors.New("until is more than a year away: exceptions must expire")
	case strings.TrimSpace(e.Reason) == "":
		return errors.New("a reason is required")
	case len(e.Reason) > 500 || !utf8.ValidString(e.Reason) || strings.ContainsFunc(e.Reason, func(r rune) bool { return r < 0x20 }):
		return errors.New("the reason must be one line of text, at most 500 bytes")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Exceptions stores exceptions. It is safe for concurrent use.
type Exceptions struct {
	kv jetstream.KeyValue
}

// OpenExceptions opens the exceptions bucket in st.
func OpenExceptions(ctx context.Context, st *store.Store) (*Exceptions, error) {
	kv, err := st.KV(ctx, ExceptionsBucket, 1)
	if err != nil {
		return nil, err
	}
	return &Exceptions{kv: kv}, nil
}

func exceptionKey(fn, id string) string { return fn + "." + strings.ReplaceAll(id, ".", "_") }

// Allow stores e, replacing an exception for the same function and id.
func (x *Exceptions) Allow(ctx context.Context, e Exception) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = x.kv.Put(ctx, exceptionKey(e.Function, e.ID), b)
	return err
}

// Remove deletes the exception of fn for id.
func (x *Exceptions) Remove(ctx context.Context, fn, id string) error {
	if !manifest.ValidName(fn) || !advisoryID.MatchString(id) {
		return ErrNoException
	}
	if _, err := x.kv.Get(ctx, exceptionKey(fn, id)); err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNoException
		}
		return err
	}
	return x.kv.Purge(ctx, exceptionKey(fn, id))
}

// List returns every exception, expired ones too, sorted by function and id.
func (x *Exceptions) List(ctx context.Context) ([]Exception, error) {
	lister, err := x.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer lister.Stop()
	var out []Exception
	for k := range lister.Keys() {
		e, err := x.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var ex Exception
		if json.Unmarshal(e.Value(), &ex) == nil {
			out = append(out, ex)
		}
	}
	slices.SortFunc(out, func(a, b Exception) int {
		return strings.Compare(a.Function+"\x00"+a.ID, b.Function+"\x00"+b.ID)
	})
	return out, nil
}

// For returns fn's exceptions.
func (x *Exceptions) For(ctx context.Context, fn string) ([]Exception, error) {
	all, err := x.List(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(e Exception) bool { return e.Function != fn }), nil
}
