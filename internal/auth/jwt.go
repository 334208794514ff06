package auth

import (
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
	"math/big"
	"slices"
	"strings"
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
}

// JWTVerifier checks JWTs. It is safe for concurrent use.
type JWTVerifier struct {
	keys     []jwk
	issuer   string
	audience string
	hs256    []byte
	leeway   time.Duration
	now      func() time.Time
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
	v := &JWTVerifier{issuer: cfg.Issuer, audience: cfg.Audience, hs256: cfg.HS256, leeway: cfg.Leeway, now: time.Now}
	if len(cfg.JWKS) > 0 {
		keys, err := parseJWKS(cfg.JWKS)
		if err != nil {
			return nil, err
		}
		v.keys = keys
	}
	if len(v.keys) == 0 && len(v.hs256) == 0 {
		return nil, errors.New("jwt: no keys")
	}
	return v, nil
}

func parseJWKS(b []byte) ([]jwk, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Crv, Use string
			N, E, X, Y              string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var out []jwk
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key jwk
		key.kid = k.Kid
		switch k.Kty {
		case "RSA":
			n, err1 := b64big(k.N)
			e, err2 := b64big(k.E)
			if err1 != nil || err2 != nil || !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
				return nil, fmt.Errorf("jwks: key %d: a bad or short (<2048 bits) RSA key", i)
			}
			key.alg, key.pub = "RS256", &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			if k.Crv != "P-256" {
				return nil, fmt.Errorf("jwks: key %d: curve %q: only P-256 (ES256)", i, k.Crv)
			}
			x, err1 := b64big(k.X)
			y, err2 := b64big(k.Y)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("jwks: key %d: bad EC point", i)
			}
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
			if _, err := pub.ECDH(); err != nil {
				return nil, fmt.Errorf("jwks: key %d: point not on P-256", i)
			}
			key.alg, key.pub = "ES256", pub
		case "OKP":
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("jwks: key %d: only Ed25519 OKP keys", i)
			}
			key.alg, key.pub = "EdDSA", ed25519.PublicKey(x)
		default:
			return nil, fmt.Errorf("jwks: key %d: key type %q not supported", i, k.Kty)
		}
		if k.Alg != "" && k.Alg != key.alg {
			return nil, fmt.Errorf("jwks: key %d: alg %q does not fit a %s key", i, k.Alg, k.Kty)
		}
		out = append(out, key)
	}
	return out, nil
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
	var header struct {
		Alg, Kid, Typ string
		Crit          []string
	}
	if err := decodePart(parts[0], &header); err != nil {
		return nil, err
	}
	if len(header.Crit) > 0 {
		return nil, fmt.Errorf("%w: critical header extensions are not understood", ErrBadJWT)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrBadJWT)
	}
	signed := []byte(parts[0] + "." + parts[1])
	if err := v.checkSignature(header.Alg, header.Kid, signed, sig); err != nil {
		return nil, err
	}
	var c struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *json.Number    `json:"exp"`
		Nbf *json.Number    `json:"nbf"`
	}
	if err := decodePart(parts[1], &c); err != nil {
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
	var candidates []jwk
	for _, k := range v.keys {
		if k.alg == alg && (kid == "" || k.kid == kid) {
			candidates = append(candidates, k)
		}
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

func decodePart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return fmt.Errorf("%w: a part is not base64url", ErrBadJWT)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: a part is not a JSON object", ErrBadJWT)
	}
	return nil
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
