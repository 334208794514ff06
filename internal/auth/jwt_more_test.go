package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
)

// signRaw signs header and claims given as JSON text, byte for byte, with
// the EC key (ES256).
func (k *testKeys) signRaw(header, claims string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	in := b64([]byte(header)) + "." + b64([]byte(claims))
	digest := sha256.Sum256([]byte(in))
	r, s, _ := ecdsa.Sign(rand.Reader, k.ec, digest[:])
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b64(sig)
}

// TestJWTCanonicalJSON refuses tokens that two JSON parsers could read two
// ways: the same member twice, twice but for case, trailing data, a date
// written as a string.
func TestJWTCanonicalJSON(t *testing.T) {
	keys := newTestKeys(t)
	v, err := NewJWTVerifier(JWTConfig{JWKS: keys.jwks, Issuer: "i", Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	const h = `{"alg":"ES256"}`
	if _, err := v.Verify(keys.signRaw(h, `{"iss":"i","aud":"a","sub":"s","exp":9999999999}`)); err != nil {
		t.Fatalf("the canonical token: %v", err)
	}
	for name, c := range map[string][2]string{
		"sub twice":         {h, `{"iss":"i","aud":"a","sub":"s","sub":"admin","exp":9999999999}`},
		"iss and ISS":       {h, `{"ISS":"evil","iss":"i","aud":"a","sub":"s","exp":9999999999}`},
		"Sub only":          {h, `{"iss":"i","aud":"a","Sub":"s","exp":9999999999}`},
		"exp as a string":   {h, `{"iss":"i","aud":"a","sub":"s","exp":"9999999999"}`},
		"trailing data":     {h, `{"iss":"i","aud":"a","sub":"s","exp":9999999999}{"sub":"admin"}`},
		"trailing garbage":  {h, `{"iss":"i","aud":"a","sub":"s","exp":9999999999} x`},
		"sub a number":      {h, `{"iss":"i","aud":"a","sub":7,"exp":9999999999}`},
		"alg twice":         {`{"alg":"ES256","alg":"none"}`, `{"iss":"i","aud":"a","sub":"s","exp":9999999999}`},
		"header an array":   {`["ES256"]`, `{"iss":"i","aud":"a","sub":"s","exp":9999999999}`},
		"kid a number":      {`{"alg":"ES256","kid":1}`, `{"iss":"i","aud":"a","sub":"s","exp":9999999999}`},
		"claims not closed": {h, `{"iss":"i","aud":"a","sub":"s","exp":9999999999`},
		"nbf an object":     {h, `{"iss":"i","aud":"a","sub":"s","exp":9999999999,"nbf":{}}`},
		"aud a number":      {h, `{"iss":"i","aud":1,"sub":"s","exp":9999999999}`},
		"exp with a + sign": {h, `{"iss":"i","aud":"a","sub":"s","exp":+9999999999}`},
	} {
		if _, err := v.Verify(keys.signRaw(c[0], c[1])); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestJWKSSkipsWhatItCannotUse: one key of a kind Moat does not take (or a
// broken one) is skipped and logged, the others work.
func TestJWKSSkipsWhatItCannotUse(t *testing.T) {
	keys := newTestKeys(t)
	var set struct{ Keys []map[string]string }
	json.Unmarshal(keys.jwks, &set)
	set.Keys = append(set.Keys,
		map[string]string{"kty": "oct", "k": "c2VjcmV0"},
		map[string]string{"kty": "EC", "crv": "P-384", "x": "AQ", "y": "AQ"},
		map[string]string{"kty": "RSA", "n": "AQAB", "e": "AQAB"},
		map[string]string{"kty": "OKP", "crv": "X25519", "x": "AQ"})
	b, _ := json.Marshal(set)
	var logged strings.Builder
	v, err := NewJWTVerifier(JWTConfig{JWKS: b, Issuer: "i", Audience: "a", Log: newTextLog(&logged)})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(*v.keys.Load()); got != 3 {
		t.Fatalf("%d keys in use, want the 3 usable ones", got)
	}
	if n := strings.Count(logged.String(), "jwks: key skipped"); n != 4 {
		t.Errorf("%d skipped keys logged, want 4:\n%s", n, logged.String())
	}
	if _, err := v.Verify(keys.sign(t, map[string]any{"alg": "RS256", "kid": "r1"}, map[string]any{"iss": "i", "aud": "a", "sub": "s", "exp": 9999999999}, nil)); err != nil {
		t.Fatalf("a usable key: %v", err)
	}
}

// TestJWKSReload: a token naming a kid no key has reloads the set, at most
// once per interval; a reload without a usable key keeps the keys in use.
func TestJWKSReload(t *testing.T) {
	old, rotated := newTestKeys(t), newTestKeys(t)
	var fetches atomic.Int32
	current := atomic.Pointer[[]byte]{}
	current.Store(&old.jwks)
	now := time.Now()
	v, err := NewJWTVerifier(JWTConfig{JWKS: old.jwks, Issuer: "i", Audience: "a", RefreshEvery: time.Minute,
		Source: func(context.Context) ([]byte, error) { fetches.Add(1); return *current.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now }
	v.fetched = now.Add(-2 * time.Minute)
	claims := map[string]any{"iss": "i", "aud": "a", "sub": "s", "exp": 9999999999}
	// The issuer rotates: its new key has a kid of its own.
	rb := []byte(strings.ReplaceAll(string(rotated.jwks), `"kid":"r1"`, `"kid":"r2"`))
	current.Store(&rb)
	if _, err := v.Verify(rotated.sign(t, map[string]any{"alg": "RS256", "kid": "r2"}, claims, nil)); err != nil {
		t.Fatalf("a token of the rotated key: %v", err)
	}
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches", fetches.Load())
	}
	// Unknown kids again within the interval: no fetch, refused.
	for range 5 {
		if _, err := v.Verify(rotated.sign(t, map[string]any{"alg": "RS256", "kid": "nope"}, claims, nil)); err == nil {
			t.Fatal("an unknown kid accepted")
		}
	}
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches for unknown kids within the interval", fetches.Load())
	}
	// A set with nothing usable does not replace the keys in use.
	empty := []byte(`{"keys":[{"kty":"oct","k":"eA"}]}`)
	current.Store(&empty)
	if err := v.Reload(context.Background()); err == nil {
		t.Fatal("a reload to no usable keys succeeded")
	}
	if _, err := v.Verify(rotated.sign(t, map[string]any{"alg": "RS256", "kid": "r2"}, claims, nil)); err != nil {
		t.Fatalf("the keys in use after a bad reload: %v", err)
	}
}

func TestJWKSSource(t *testing.T) {
	keys := newTestKeys(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks.json":
			w.Write(keys.jwks)
		case "/huge":
			w.Write([]byte(strings.Repeat(" ", maxJWKS+1)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	src, err := JWKSSource(srv.URL+"/jwks.json", srv.URL+"/", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := src(ctx); err != nil || string(b) != string(keys.jwks) {
		t.Fatalf("fetch: %v", err)
	}
	for name, c := range map[string][2]string{
		"another host":  {"https://evil.example/jwks.json", srv.URL},
		"plain http":    {strings.Replace(srv.URL, "https", "http", 1) + "/jwks.json", srv.URL},
		"issuer http":   {srv.URL + "/jwks.json", strings.Replace(srv.URL, "https", "http", 1)},
		"issuer no URL": {srv.URL + "/jwks.json", "moat-idp"},
	} {
		if _, err := JWKSSource(c[0], c[1], srv.Client()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, path := range []string{"/huge", "/missing"} {
		s, _ := JWKSSource(srv.URL+path, srv.URL, srv.Client())
		if _, err := s(ctx); err == nil {
			t.Errorf("%s fetched", path)
		}
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(file, keys.jwks, 0o644)
	fs, err := JWKSSource(file, "anything", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs(ctx); err != nil || string(b) != string(keys.jwks) {
		t.Fatalf("file: %v", err)
	}
}

// FuzzJWTAgainstOracle checks the verifier against golang-jwt v5, a kept
// library: whatever Moat accepts, the library (told the same keys, issuer,
// audience and algorithms) accepts too, with the same subject. Moat may
// refuse more (non-canonical JSON, control characters in sub).
//
//	go test ./internal/auth -run XXX -fuzz FuzzJWTAgainstOracle -fuzztime 60s
func FuzzJWTAgainstOracle(f *testing.F) {
	keys := newTestKeys(f)
	v, err := NewJWTVerifier(JWTConfig{JWKS: keys.jwks, Issuer: "i", Audience: "a"})
	if err != nil {
		f.Fatal(err)
	}
	claims := map[string]any{"iss": "i", "aud": "a", "sub": "s", "exp": 9999999999}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		f.Add(keys.sign(f, map[string]any{"alg": alg}, claims, nil))
	}
	f.Add(keys.signRaw(`{"alg":"ES256","kid":"e1"}`, `{"iss":"i","aud":["x","a"],"sub":"s","exp":9999999999,"nbf":1}`))
	parser := gojwt.NewParser(gojwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}), gojwt.WithIssuer("i"),
		gojwt.WithAudience("a"), gojwt.WithExpirationRequired(), gojwt.WithLeeway(0))
	keyFor := func(tok *gojwt.Token) (any, error) {
		switch tok.Method.Alg() {
		case "RS256":
			return keys.rsa.Public(), nil
		case "ES256":
			return keys.ec.Public(), nil
		case "EdDSA":
			return keys.ed.Public(), nil
		}
		return nil, errors.New("no key")
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token)
		if err != nil {
			return
		}
		tok, err := parser.Parse(token, keyFor)
		if err != nil {
			t.Fatalf("Moat accepted what golang-jwt refuses (%v): %q", err, token)
		}
		if sub, _ := tok.Claims.GetSubject(); sub != c.Subject {
			t.Fatalf("subject %q, golang-jwt reads %q: %q", c.Subject, sub, token)
		}
	})
}

func newTextLog(w *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedBuilder{b: w}, nil))
}

type lockedBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
