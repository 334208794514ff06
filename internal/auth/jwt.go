package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// ErrBadJWT reports a JWT that is malformed, badly signed, or whose claims
// do not hold. Its text says which, for the node's log, never the caller.
var ErrBadJWT = errors.New("invalid JWT")

// JWTConfig says which JWTs a node accepts for functions with auth: jwt.
type JWTConfig struct {
	JWKS     []byte // a JSON Web Key Set: RSA (RS256), EC P-256 (ES256), OKP Ed25519 (EdDSA)
	Issuer   string // required "iss"
	Audience string // required in "aud"
	HS256    []byte // a shared secret; HS256 is accepted only when this is set
	Leeway   time.Duration
	// Source, if set, fetches the JWKS anew: on Reload (SIGHUP), and when a
	// token names a kid no key has, at most once every RefreshEvery.
	Source       func(context.Context) ([]byte, error)
	RefreshEvery time.Duration // 0 is 30s
	Log          *slog.Logger  // keys skipped and refreshes; nil logs nothing
}

// JWTVerifier checks JWTs. It is safe for concurrent use.
type JWTVerifier struct {
	keys     atomic.Pointer[[]jwk]
	issuer   string
	audience string
	hs256    []byte
	leeway   time.Duration
	now      func() time.Time
	source   func(context.Context) ([]byte, error)
	every    time.Duration
	log      *slog.Logger

	mu      sync.Mutex // one refresh at a time
	fetched time.Time  // the last refresh
}

type jwk struct {
	kid string
	alg string // the only algorithm this key verifies
	pub crypto.PublicKey
}

// maxJWT bounds a token's length.
const maxJWT = 8 << 10

// NewJWTVerifier parses cfg's keys. An issuer and an audience are required:
// a token minted for another service must not pass here.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt: an issuer and an audience are required")
	}
	if len(cfg.HS256) > 0 && len(cfg.HS256) < 32 {
		return nil, errors.New("jwt: an HS256 secret must be at least 32 bytes")
	}
	v := &JWTVerifier{issuer: cfg.Issuer, audience: cfg.Audience, hs256: cfg.HS256, leeway: cfg.Leeway, now: time.Now,
		source: cfg.Source, every: cfg.RefreshEvery, log: cfg.Log}
	if v.every == 0 {
		v.every = 30 * time.Second
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	var keys []jwk
	if len(cfg.JWKS) > 0 {
		var err error
		if keys, err = v.parse(cfg.JWKS); err != nil {
			return nil, err
		}
	}
	if len(keys) == 0 && len(v.hs256) == 0 {
		return nil, errors.New("jwt: no usable keys")
	}
	v.keys.Store(&keys)
	v.fetched = v.now()
	return v, nil
}

// parse reads a JWKS, logging the keys it skips.
func (v *JWTVerifier) parse(b []byte) ([]jwk, error) {
	keys, skipped, err := parseJWKS(b)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		v.log.Warn("jwks: key skipped", slog.String("why", s))
	}
	return keys, nil
}

// Reload fetches the JWKS from the configured source and uses it, unless
// it holds no usable key: then the keys in use stay.
func (v *JWTVerifier) Reload(ctx context.Context) error {
	if v.source == nil {
		return errors.New("jwt: no JWKS source to reload")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.reload(ctx)
}

func (v *JWTVerifier) reload(ctx context.Context) error {
	v.fetched = v.now()
	b, err := v.source(ctx)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys, err := v.parse(b)
	if err == nil && len(keys) == 0 && len(v.hs256) == 0 {
		err = errors.New("jwks: no usable keys; the keys in use stay")
	}
	if err != nil {
		return err
	}
	v.keys.Store(&keys)
	v.log.Info("jwks reloaded", slog.Int("keys", len(keys)))
	return nil
}

// refreshFor reloads the JWKS for a kid no key has, unless it was fetched
// within the refresh interval; it reports whether the keys changed.
func (v *JWTVerifier) refreshFor(kid string) bool {
	if v.source == nil || kid == "" {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.now().Sub(v.fetched) < v.every {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.reload(ctx); err != nil {
		v.log.Warn("jwks refresh for an unknown kid", slog.String("kid", truncateKid(kid)), slog.Any("err", err))
		return false
	}
	return true
}

func truncateKid(kid string) string {
	if len(kid) > 40 {
		return kid[:40]
	}
	return kid
}

// parseJWKS reads the keys of a JWKS that Moat can use, and says why it
// skipped each other one: one key of a type Moat does not support (or a
// broken one) must not cost the others. It fails only on a JWKS that is not
// a JSON object with a list of keys.
func parseJWKS(b []byte) ([]jwk, []string, error) {
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, nil, fmt.Errorf("jwks: %w", err)
	}
	var out []jwk
	var skipped []string
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, err := parseJWK(i, k)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		out = append(out, key)
	}
	return out, skipped, nil
}

// jwkJSON is a key of a JWKS as JSON writes it.
type jwkJSON struct {
	Kty, Kid, Alg, Crv, Use string
	N, E, X, Y              string
}

// parseJWK reads key i of a JWKS.
func parseJWK(i int, k jwkJSON) (jwk, error) {
	key := jwk{kid: k.Kid}
	switch k.Kty {
	case "RSA":
		n, err1 := b64big(k.N)
		e, err2 := b64big(k.E)
		if err1 != nil || err2 != nil || !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
			return key, fmt.Errorf("jwks: key %d: a bad or short (<2048 bits) RSA key", i)
		}
		key.alg, key.pub = "RS256", &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		if k.Crv != "P-256" {
			return key, fmt.Errorf("jwks: key %d: curve %.20q: only P-256 (ES256)", i, k.Crv)
		}
		x, err1 := b64big(k.X)
		y, err2 := b64big(k.Y)
		if err1 != nil || err2 != nil {
			return key, fmt.Errorf("jwks: key %d: bad EC point", i)
		}
		pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
		if _, err := pub.ECDH(); err != nil {
			return key, fmt.Errorf("jwks: key %d: point not on P-256", i)
		}
		key.alg, key.pub = "ES256", pub
	case "OKP":
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return key, fmt.Errorf("jwks: key %d: only Ed25519 OKP keys", i)
		}
		key.alg, key.pub = "EdDSA", ed25519.PublicKey(x)
	default:
		return key, fmt.Errorf("jwks: key %d: key type %.20q not supported", i, k.Kty)
	}
	if k.Alg != "" && k.Alg != key.alg {
		return key, fmt.Errorf("jwks: key %d: alg %.20q does not fit a %s key", i, k.Alg, k.Kty)
	}
	return key, nil
}

func b64big(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url")
	}
	return new(big.Int).SetBytes(b), nil
}

// Claims are what a verified JWT says of its subject.
type Claims struct {
	Subject string
	Issuer  string
	Expires time.Time
}

// Verify checks token's signature and claims: alg among those configured
// and fitting the key (never "none"), iss, aud, exp (required), nbf and a
// non-empty sub without control characters.
func (v *JWTVerifier) Verify(token string) (*Claims, error) {
	if len(token) > maxJWT {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBadJWT, maxJWT)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not three parts", ErrBadJWT)
	}
	header, err := strictObject(parts[0])
	if err != nil {
		return nil, err
	}
	if _, ok := header["crit"]; ok {
		return nil, fmt.Errorf("%w: critical header extensions are not understood", ErrBadJWT)
	}
	alg, err := stringMember(header, "alg", true)
	if err != nil {
		return nil, err
	}
	kid, err := stringMember(header, "kid", false)
	if err != nil {
		return nil, err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrBadJWT)
	}
	signed := []byte(parts[0] + "." + parts[1])
	if err := v.checkSignature(alg, kid, signed, sig); err != nil {
		return nil, err
	}
	claims, err := strictObject(parts[1])
	if err != nil {
		return nil, err
	}
	var c struct {
		Iss, Sub string
		Aud      json.RawMessage
		Exp, Nbf *json.Number
	}
	if c.Iss, err = stringMember(claims, "iss", false); err != nil {
		return nil, err
	}
	if c.Sub, err = stringMember(claims, "sub", false); err != nil {
		return nil, err
	}
	c.Aud = claims["aud"]
	if c.Exp, err = numberMember(claims, "exp"); err != nil {
		return nil, err
	}
	if c.Nbf, err = numberMember(claims, "nbf"); err != nil {
		return nil, err
	}
	now := v.now()
	switch {
	case c.Iss != v.issuer:
		return nil, fmt.Errorf("%w: issuer %.60q", ErrBadJWT, c.Iss)
	case !hasAudience(c.Aud, v.audience):
		return nil, fmt.Errorf("%w: audience", ErrBadJWT)
	case c.Exp == nil:
		return nil, fmt.Errorf("%w: no exp", ErrBadJWT)
	}
	exp, err := numericDate(*c.Exp)
	if err != nil {
		return nil, err
	}
	if !now.Before(exp.Add(v.leeway)) {
		return nil, fmt.Errorf("%w: expired", ErrBadJWT)
	}
	if c.Nbf != nil {
		nbf, err := numericDate(*c.Nbf)
		if err != nil {
			return nil, err
		}
		if now.Add(v.leeway).Before(nbf) {
			return nil, fmt.Errorf("%w: not yet valid", ErrBadJWT)
		}
	}
	if c.Sub == "" || len(c.Sub) > 256 || strings.IndexFunc(c.Sub, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
		return nil, fmt.Errorf("%w: sub missing, too long or holding control characters", ErrBadJWT)
	}
	return &Claims{Subject: c.Sub, Issuer: c.Iss, Expires: exp}, nil
}

func (v *JWTVerifier) checkSignature(alg, kid string, signed, sig []byte) error {
	if alg == "HS256" {
		if len(v.hs256) == 0 {
			return fmt.Errorf("%w: HS256 is not enabled", ErrBadJWT)
		}
		m := hmac.New(sha256.New, v.hs256)
		m.Write(signed)
		if !hmac.Equal(m.Sum(nil), sig) {
			return fmt.Errorf("%w: bad signature", ErrBadJWT)
		}
		return nil
	}
	if !slices.Contains([]string{"RS256", "ES256", "EdDSA"}, alg) {
		return fmt.Errorf("%w: alg %.20q not accepted", ErrBadJWT, alg)
	}
	// Only keys made for this alg, and the one named by kid if any: the
	// header cannot make an RSA key verify HMAC or the like.
	candidates := v.candidates(alg, kid)
	if len(candidates) == 0 && v.refreshFor(kid) {
		candidates = v.candidates(alg, kid) // the issuer rotated its keys
	}
	if len(candidates) == 0 {
		return fmt.Errorf("%w: no %s key %.40q", ErrBadJWT, alg, kid)
	}
	digest := sha256.Sum256(signed)
	for _, k := range candidates {
		switch pub := k.pub.(type) {
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if len(sig) == 64 && ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				return nil
			}
		case ed25519.PublicKey:
			if ed25519.Verify(pub, signed, sig) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: bad signature", ErrBadJWT)
}

func (v *JWTVerifier) candidates(alg, kid string) []jwk {
	var out []jwk
	for _, k := range *v.keys.Load() {
		if k.alg == alg && (kid == "" || k.kid == kid) {
			out = append(out, k)
		}
	}
	return out
}

// strictObject decodes a token part: base64url of one JSON object, its
// member names unique (also ignoring case: encoding/json would let "ISS"
// stand for "iss"), and nothing after it. A token two parsers could read
// two ways is refused.
func strictObject(part string) (map[string]json.RawMessage, error) {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return nil, fmt.Errorf("%w: a part is not base64url", ErrBadJWT)
	}
	bad := func(why string) error { return fmt.Errorf("%w: a part is %s", ErrBadJWT, why) }
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	folded := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return nil, bad("not a JSON object")
		}
		if folded[strings.ToLower(name)] {
			return nil, bad(fmt.Sprintf("holding the member %.20q twice", name))
		}
		folded[strings.ToLower(name)] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, bad("not a JSON object")
		}
		out[name] = value
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, bad("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("followed by more than its object")
	}
	return out, nil
}

// stringMember is member name of m, which must be a JSON string if there.
func stringMember(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return "", fmt.Errorf("%w: no %s", ErrBadJWT, name)
		}
		return "", nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%w: %s is not a string", ErrBadJWT, name)
	}
	return s, nil
}

// numberMember is member name of m, which must be a JSON number if there.
func numberMember(m map[string]json.RawMessage, name string) (*json.Number, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return nil, fmt.Errorf("%w: %s is not a number", ErrBadJWT, name)
	}
	n := json.Number(raw)
	return &n, nil
}

func hasAudience(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && slices.Contains(many, want)
}

func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("%w: a bad date", ErrBadJWT)
	}
	return time.Unix(int64(f), 0), nil
}

// maxJWKS bounds a JWKS fetched or read.
const maxJWKS = 1 << 20

// JWKSSource is how a node fetches its JWKS anew: spec is a file, or an
// HTTPS URL on the issuer's own host (a JWKS from anywhere else could let
// a third party mint tokens), fetched with client, at most 1 MiB.
func JWKSSource(spec, issuer string, client *http.Client) (func(context.Context) ([]byte, error), error) {
	if !strings.Contains(spec, "://") {
		return func(context.Context) ([]byte, error) {
			f, err := os.Open(spec)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return readBounded(f)
		}, nil
	}
	u, err := url.Parse(spec)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("jwks %.80q: a file, or an https:// URL", spec)
	}
	iss, err := url.Parse(issuer)
	if err != nil || iss.Scheme != "https" || !strings.EqualFold(iss.Host, u.Host) {
		return nil, fmt.Errorf("jwks %s: fetched only from the issuer's host (the issuer is %.80q)", u.Redacted(), issuer)
	}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
		}
		return readBounded(resp.Body)
	}, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJWKS+1))
	if err == nil && len(b) > maxJWKS {
		err = fmt.Errorf("over %d KiB", maxJWKS>>10)
	}
	return b, err
}
