package console

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever a sign-in form names as where to go next, the
// redirect stays on the console: a path, never a host or a scheme.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/audit?fn=x", "//evil.example", "/\\evil", "https://evil.example", "javascript:alert(1)", "/\r\nSet-Cookie: x", "", "/%2f%2fevil", "\\\\evil", "/\t/evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n\t") {
			t.Fatalf("safeNext(%q) = %q", next, got)
		}
		u, err := url.Parse(got)
		if err != nil {
			return // a 404 of the console's own, never a redirect elsewhere
		}
		if u.Host != "" || u.Scheme != "" || u.User != nil {
			t.Fatalf("safeNext(%q) = %q leaves the console", next, got)
		}
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: a path of the console is kept as it is", next, got)
		}
	})
}

func TestSparkline(t *testing.T) {
	c := sparkline([]float64{0, 2, 4}, []float64{0, 1, 0}, 30, 10)
	if c.Empty || len(c.Bars) != 3 || c.Bars[2].H != 9 || c.Bars[1].EH != 9.0/4 || c.Bars[0].H != 0 {
		t.Fatalf("%+v", c)
	}
	if c := sparkline(make([]float64, 24), nil, 120, 24); !c.Empty {
		t.Fatal("all zero is a chart")
	}
	if c := sparkline(nil, nil, 120, 24); !c.Empty {
		t.Fatal("no data is a chart")
	}
}
