package kvstore

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// natsKey is what NATS accepts as a KV key.
var natsKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"carole@example.com": "carole=40example=2Ecom",
		"a.b":                "a=2Eb",
		"=":                  "=3D",
		"blue/small":         "blue/small",
		"x y":                "x=20y",
		"日":                  "=E6=97=A5",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"=", "=4", "=4g", "=zz", "a=1"} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) accepted", bad)
		}
	}
}

func TestCheckKey(t *testing.T) {
	for _, bad := range []string{"", strings.Repeat("k", MaxKey+1), "a\nb", "\xff", "tab\there"} {
		if checkKey(bad) == nil {
			t.Errorf("checkKey(%q) accepted", bad)
		}
	}
	for _, good := range []string{"k", strings.Repeat("k", MaxKey), "carole@example.com", "日本/東京", "a b"} {
		if err := checkKey(good); err != nil {
			t.Errorf("checkKey(%q): %v", good, err)
		}
	}
}

func TestRoundTTL(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		time.Millisecond: time.Second, time.Second: time.Second, 1500 * time.Millisecond: 2 * time.Second, time.Hour: time.Hour,
	} {
		if got := roundTTL(in); got != want {
			t.Errorf("roundTTL(%v) = %v, want %v", in, got, want)
		}
	}
}

// FuzzEscape: every key escapes to a valid NATS key that unescapes to it,
// and the escape of a prefix is a prefix of the escape.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"carole@example.com", "a.b", "=3D", "日本", "..", "a/b/c"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, k string, cut int) {
		if k == "" {
			return
		}
		e := Escape(k)
		if !natsKey.MatchString(e) || strings.Contains(e, ".") {
			t.Fatalf("Escape(%q) = %q, not a single-token NATS key", k, e)
		}
		back, err := Unescape(e)
		if err != nil || back != k {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", k, back, err)
		}
		if cut < 0 {
			cut = -cut
		}
		p := k[:cut%(len(k)+1)]
		if !strings.HasPrefix(e, Escape(p)) {
			t.Fatalf("Escape(%q) = %q does not start with Escape(%q) = %q", k, e, p, Escape(p))
		}
	})
}
