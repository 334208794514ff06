//go:build !wasip1

package fn_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/moatfn/moat/sdk/fn"
)

// Off Moat every capability fails with ErrNotOnMoat rather than panicking or
// pretending, so code using the SDK can be tested on a developer's machine.
func TestNotOnMoat(t *testing.T) {
	calls := map[string]func() error{
		"KV.Get":    func() error { _, _, err := fn.KV("b").Get("k"); return err },
		"KV.Put":    func() error { _, err := fn.KV("b").Put("k", nil); return err },
		"KV.Keys":   func() error { _, err := fn.KV("b").Keys(""); return err },
		"KV.Delete": func() error { return fn.KV("b").Delete("k") },
		"Secret":    func() error { _, err := fn.Secret("S"); return err },
		"HTTPClient": func() error {
			_, err := fn.HTTPClient().Get("https://example.net/")
			return err
		},
		"Call": func() error { _, err := fn.Call("other", "GET", "/", nil, nil); return err },
		"Logger": func() error {
			return fn.Logger().Handler().Handle(t.Context(), slog.NewRecord(time.Time{}, slog.LevelInfo, "hi", 0))
		},
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, fn.ErrNotOnMoat) {
			t.Errorf("%s error = %v, want ErrNotOnMoat", name, err)
		}
		var e *fn.Error
		if errors.As(err, &e) && (e.Op == "" || e.Message == "") {
			t.Errorf("%s error = %+v, want Op and Message set", name, e)
		}
	}
}
