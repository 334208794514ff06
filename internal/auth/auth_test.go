package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/store"
)

func TestLoadAdmin(t *testing.T) {
	dir := t.TempDir()
	a, created, err := LoadAdmin(dir)
	if err != nil || !created {
		t.Fatalf("LoadAdmin = %v, created %v", err, created)
	}
	path := filepath.Join(dir, TokenFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	b, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	if !strings.HasPrefix(tok, "moat_admin_") || len(tok) < 50 {
		t.Fatalf("token %q is not a prefixed 256-bit token", tok)
	}
	again, created, err := LoadAdmin(dir)
	if err != nil || created || again.hash != a.hash {
		t.Fatalf("second LoadAdmin changed the token: %v %v", err, created)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadAdmin(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("LoadAdmin with a 0644 token file = %v", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, _, err := LoadAdmin(dir); err == nil {
		t.Fatal("a short token was accepted")
	}
}

func TestCheck(t *testing.T) {
	a, _, err := LoadAdmin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := &Keys{admin: a, cache: map[string]*Key{}, now: time.Now}
	tests := []string{"", "Bearer", "Bearer ", "Basic dG9rZW4=", "Bearer wrong", "bearer wrong", "Bearer\ttoken"}
	for _, h := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if id, err := keys.Identify(r); err == nil {
			t.Errorf("Identify(%q) = %+v", h, id)
		}
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic x", "", "Bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		tok, ok := BearerToken(r)
		if ok && (tok == "" || tok != strings.TrimSpace(tok)) {
			t.Fatalf("BearerToken(%q) = %q", h, tok)
		}
	})
}

func TestCreatedKeyIsItsCallersCopy(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := store.Open(ctx, log, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv, err := s.KV(ctx, "keys", 1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeys(ctx, log, nil, kv)
	if err != nil {
		t.Fatal(err)
	}
	key, token, err := keys.Create(ctx, RoleInvoker, nil, nil, 0, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	key.Hash = "" // what the API does before answering
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	if id, err := keys.Identify(r); err != nil || id.ID != key.ID {
		t.Fatalf("Identify after the caller changed its copy = %v, %v", id, err)
	}
}

// TestBlock: what bounds count an address as. A subscriber's /64 is one
// source; IPv4, mapped or not, is its address; junk stays as it came.
func TestBlock(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5555":                         "192.0.2.7",
		"192.0.2.7":                              "192.0.2.7",
		"[::ffff:192.0.2.7]:80":                  "192.0.2.7",
		"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2::1]:443":                  "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":                  "2001:db8:1:3::/64",
		"[fe80::1%eth0]:22":                      "fe80::/64",
		"[::1]:8080":                             "::/64",
		"not an address":                         "not an address",
		"":                                       "",
		"[::1":                                   "[::1",
	} {
		if got := Block(in); got != want {
			t.Errorf("Block(%q) = %q, want %q", in, got, want)
		}
	}
	// A subscriber rotating through its /64 fails as one source.
	l := NewFailureLimiter(3, time.Hour, 100)
	for i := range 3 {
		l.Fail(fmt.Sprintf("[2001:db8:1:2::%x]:1000", i+1))
	}
	if _, blocked := l.Blocked("[2001:db8:1:2::ffff]:1000"); !blocked {
		t.Error("a new address in a /64 that failed three times is not blocked")
	}
	if _, blocked := l.Blocked("[2001:db8:1:3::1]:1000"); blocked {
		t.Error("the next /64 is blocked too")
	}
}

// FuzzBlock: any remote address gives an answer without panicking, and an
// address that parses counts as an address or a /64 that holds it.
func FuzzBlock(f *testing.F) {
	for _, s := range []string{"192.0.2.7:1", "[2001:db8::1]:2", "[fe80::1%eth0]:3", "[::ffff:1.2.3.4]:4", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Block(s)
		ip, err := netip.ParseAddr(Source(s))
		if err != nil {
			return
		}
		ip = ip.Unmap().WithZone("")
		if a, err := netip.ParseAddr(got); err == nil {
			if a != ip {
				t.Fatalf("Block(%q) = %q, not the address", s, got)
			}
			return
		}
		p, err := netip.ParsePrefix(got)
		if err != nil || p.Bits() != 64 || !p.Contains(ip) {
			t.Fatalf("Block(%q) = %q, not a /64 holding %v", s, got, ip)
		}
	})
}
