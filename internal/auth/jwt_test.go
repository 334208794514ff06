package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testKeys are one key of each kind, and the JWKS publishing them.
type testKeys struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	jwks []byte
}

func newTestKeys(t testing.TB) *testKeys {
	t.Helper()
	k := &testKeys{}
	k.rsa, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString
	pt := func(i *big.Int) string { b := make([]byte, 32); i.FillBytes(b); return b64(b) }
	k.jwks, _ = json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "n": b64(k.rsa.N.Bytes()), "e": b64(big.NewInt(int64(k.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": pt(k.ec.X), "y": pt(k.ec.Y)},
		{"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": b64(k.ed.Public().(ed25519.PublicKey))},
	}})
	return k
}

// sign makes a JWT of header and claims with the key for alg.
func (k *testKeys) sign(t testing.TB, header, claims map[string]any, hs []byte) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(in))
	var sig []byte
	switch header["alg"] {
	case "RS256":
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, digest[:])
	case "ES256":
		r, s, _ := ecdsa.Sign(rand.Reader, k.ec, digest[:])
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case "EdDSA":
		sig = ed25519.Sign(k.ed, []byte(in))
	case "HS256":
		m := hmac.New(sha256.New, hs)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	}
	return in + "." + b64(sig)
}

func TestJWTVerify(t *testing.T) {
	keys := newTestKeys(t)
	now := time.Now()
	v, err := NewJWTVerifier(JWTConfig{JWKS: keys.jwks, Issuer: "https://idp.example", Audience: "moat"})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://idp.example", "aud": "moat", "sub": "carole", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	secret := []byte(strings.Repeat("s", 32))
	tests := []struct {
		name    string
		token   string
		wantErr string // "" means valid
	}{
		{"RS256", keys.sign(t, map[string]any{"alg": "RS256", "kid": "r1"}, claims(nil), nil), ""},
		{"ES256", keys.sign(t, map[string]any{"alg": "ES256", "kid": "e1"}, claims(nil), nil), ""},
		{"EdDSA without kid", keys.sign(t, map[string]any{"alg": "EdDSA"}, claims(nil), nil), ""},
		{"aud array", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { c["aud"] = []string{"other", "moat"} }), nil), ""},
		{"alg none", strings.Join([]string{b64json(map[string]any{"alg": "none"}), b64json(claims(nil)), ""}, "."), "alg"},
		{"alg None", keys.sign(t, map[string]any{"alg": "None"}, claims(nil), nil), "alg"},
		{"HS256 not enabled", keys.sign(t, map[string]any{"alg": "HS256"}, claims(nil), secret), "HS256 is not enabled"},
		{"wrong kid for alg", keys.sign(t, map[string]any{"alg": "RS256", "kid": "e1"}, claims(nil), nil), "no RS256 key"},
		{"expired", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), nil), "expired"},
		{"no exp", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { delete(c, "exp") }), nil), "no exp"},
		{"not yet", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), nil), "not yet"},
		{"wrong audience", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { c["aud"] = "billing" }), nil), "audience"},
		{"wrong issuer", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { c["iss"] = "https://evil" }), nil), "issuer"},
		{"no sub", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { delete(c, "sub") }), nil), "sub"},
		{"control chars in sub", keys.sign(t, map[string]any{"alg": "RS256"}, claims(func(c map[string]any) { c["sub"] = "carole\nadmin" }), nil), "sub"},
		{"crit", keys.sign(t, map[string]any{"alg": "RS256", "crit": []string{"exp"}}, claims(nil), nil), "critical"},
		{"garbage", "a.b.c", "base64url"},
		{"two parts", "a.b", "three parts"},
		{"huge", strings.Repeat("a", 9000), "over"},
	}
	// A token signed by a key not in the set.
	other := newTestKeys(t)
	tests = append(tests, struct{ name, token, wantErr string }{"wrong key", other.sign(t, map[string]any{"alg": "RS256", "kid": "r1"}, claims(nil), nil), "bad signature"})
	// A tampered payload.
	good := keys.sign(t, map[string]any{"alg": "ES256"}, claims(nil), nil)
	p := strings.Split(good, ".")
	p[1] = b64json(claims(func(c map[string]any) { c["sub"] = "admin" }))
	tests = append(tests, struct{ name, token, wantErr string }{"tampered", strings.Join(p, "."), "bad signature"})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tt.wantErr == "" && c.Subject != "carole":
				t.Fatalf("subject = %q", c.Subject)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Verify = %v, want error with %q", err, tt.wantErr)
			}
		})
	}

	// HS256 only when configured, and then an RS256-signed token still needs its key.
	hv, err := NewJWTVerifier(JWTConfig{HS256: secret, Issuer: "https://idp.example", Audience: "moat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hv.Verify(keys.sign(t, map[string]any{"alg": "HS256"}, claims(nil), secret)); err != nil {
		t.Fatalf("HS256 with the secret: %v", err)
	}
	if _, err := hv.Verify(keys.sign(t, map[string]any{"alg": "HS256"}, claims(nil), []byte(strings.Repeat("x", 32)))); err == nil {
		t.Fatal("HS256 with another secret accepted")
	}
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestNewJWTVerifierRefuses(t *testing.T) {
	for name, cfg := range map[string]JWTConfig{
		"no issuer":    {JWKS: []byte(`{"keys":[]}`), Audience: "a"},
		"no keys":      {Issuer: "i", Audience: "a", JWKS: []byte(`{"keys":[]}`)},
		"short secret": {Issuer: "i", Audience: "a", HS256: []byte("short")},
		"bad jwks":     {Issuer: "i", Audience: "a", JWKS: []byte(`{`)},
		"short rsa":    {Issuer: "i", Audience: "a", JWKS: []byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`)},
		"p-384":        {Issuer: "i", Audience: "a", JWKS: []byte(`{"keys":[{"kty":"EC","crv":"P-384","x":"AQ","y":"AQ"}]}`)},
		"off curve":    {Issuer: "i", Audience: "a", JWKS: []byte(fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}]}`, b64s(1), b64s(1)))},
		"alg mismatch": {Issuer: "i", Audience: "a", JWKS: []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"HS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)},
		"oct key":      {Issuer: "i", Audience: "a", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)},
	} {
		if _, err := NewJWTVerifier(cfg); err == nil {
			t.Errorf("NewJWTVerifier(%s) succeeded", name)
		}
	}
}

func b64s(n int64) string { return base64.RawURLEncoding.EncodeToString(big.NewInt(n).Bytes()) }

func FuzzJWTVerify(f *testing.F) {
	keys := newTestKeys(f)
	v, err := NewJWTVerifier(JWTConfig{JWKS: keys.jwks, Issuer: "i", Audience: "a"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keys.sign(f, map[string]any{"alg": "ES256"}, map[string]any{"iss": "i", "aud": "a", "sub": "s", "exp": 1e10}, nil))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		if c, err := v.Verify(token); err == nil && c.Subject == "" {
			t.Fatalf("accepted a token without subject: %q", token)
		}
	})
}
