package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
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
	key, token, err := keys.Create(ctx, RoleInvoker, nil, 0, "", "test")
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
