// Package egress makes the HTTP calls a function asks for, and refuses
// every call its manifest's egress prefixes do not allow.
//
// A call is denied by default. It goes out only if all of these hold:
//
//   - its URL (and each redirect's) is an absolute http or https URL that
//     a grant covers: same scheme, host and port, and a path under the
//     grant's, with no dot-segment or encoded trick (see Prefix.Allows);
//   - every address the host resolves to, checked when the connection is
//     dialled, is public; a loopback, private, link-local, metadata or
//     other special address is reached only when a grant names that
//     address as an IP literal, never through a name that resolves to it,
//     so DNS rebinding gains nothing (addr.go lists the ranges);
//   - an https server's certificate verifies against the configured roots,
//     for the URL's host, over TLS 1.2 or later.
//
// No proxy from the environment, no cookie jar, no transparent
// decompression. Request bodies, response bodies and the time a call takes
// are capped.
//
// Choices a reader may not expect:
//
//   - A grant naming a non-public address literally ("http://10.0.0.5/")
//     reaches it only if the node's operator allows a range holding it
//     (Config.Allow): the deployer cannot draw that boundary alone.
//   - Paths with non-ASCII characters, an encoded percent sign, or dots
//     followed by ";params" are refused even under a granted prefix,
//     because some servers normalise or decode them into "/" or "..".
//   - On a redirect to another origin, Authorization and Cookie are dropped
//     even when that origin is granted too; net/http alone keeps them for a
//     subdomain.
//   - Errors and DeniedError.Target never show a URL's query, fragment or
//     user info, which may hold credentials.
package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Errors a caller maps to a status; each is wrapped with the call's method
// and URL. A policy refusal is a *DeniedError instead.
var (
	// ErrInvalidRequest reports a malformed method or header.
	ErrInvalidRequest = errors.New("invalid egress request")
	// ErrRequestTooLarge reports a request body over Config.MaxRequest.
	ErrRequestTooLarge = errors.New("request body too large")
	// ErrResponseTooLarge reports a response body over Config.MaxResponse.
	ErrResponseTooLarge = errors.New("response body too large")
	// ErrTimeout reports a call that outran Config.Timeout or its
	// context's deadline.
	ErrTimeout = errors.New("timed out")
	// ErrTooManyRedirects reports a call redirected more than
	// Config.MaxRedirects times.
	ErrTooManyRedirects = errors.New("too many redirects")
)

// DeniedError reports a call no grant allows: a URL no prefix covers, a
// host that resolves to a refused address, a refused header. It is returned
// for policy refusals only, never for network failures.
type DeniedError struct {
	Target string // the URL refused, without user info, query or fragment
	Reason string // why, e.g. "no egress grant covers it"
}

// Error returns "egress to TARGET denied: REASON".
func (e *DeniedError) Error() string {
	return "egress to " + e.Target + " denied: " + e.Reason
}

// Defaults for the zero Config.
const (
	DefaultMaxRequest   = 8 << 20          // request body bytes, 8 MiB
	DefaultMaxResponse  = 4 << 20          // response body bytes, 4 MiB
	DefaultTimeout      = 10 * time.Second // a whole call
	DefaultMaxRedirects = 5                // redirects followed
)

// Config bounds a Client. The zero value is usable: system roots and the
// defaults above.
type Config struct {
	RootCAs      *x509.CertPool // roots for https; nil means the system roots
	MaxRequest   int64          // request body bytes; zero or less means DefaultMaxRequest
	MaxResponse  int64          // response body bytes; zero or less means DefaultMaxResponse
	Timeout      time.Duration  // a whole call, redirects included; zero or less means DefaultTimeout
	MaxRedirects int            // zero means DefaultMaxRedirects; negative means return a 3xx as it is
	// Allow are the non-public ranges the node's operator lets grants
	// reach (moat serve --egress-allow); a grant naming an address in none
	// of them is refused at deploy (CheckGrant) and at the call.
	Allow []netip.Prefix
}

// Client makes egress calls. It holds one http.Transport, so connections
// are reused across calls, while every dial is checked (see the package
// doc). It is safe for concurrent use.
type Client struct {
	maxRequest   int64
	maxResponse  int64
	timeout      time.Duration
	maxRedirects int
	allow        []netip.Prefix

	transport *http.Transport
	dialer    *net.Dialer
	// lookup resolves a host name; tests replace it to play a resolver
	// that answers with refused addresses.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// New returns a Client bounded by cfg.
func New(cfg Config) *Client {
	c := &Client{
		maxRequest:   cfg.MaxRequest,
		maxResponse:  cfg.MaxResponse,
		timeout:      cfg.Timeout,
		maxRedirects: cfg.MaxRedirects,
		allow:        cfg.Allow,
	}
	if c.maxRequest <= 0 {
		c.maxRequest = DefaultMaxRequest
	}
	if c.maxResponse <= 0 {
		c.maxResponse = DefaultMaxResponse
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxRedirects == 0 {
		c.maxRedirects = DefaultMaxRedirects
	}
	c.dialer = &net.Dialer{
		Timeout:        c.timeout,
		KeepAlive:      30 * time.Second,
		ControlContext: controlDial,
	}
	c.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	c.transport = &http.Transport{
		Proxy:       nil, // never from the environment
		DialContext: c.dial,
		TLSClientConfig: &tls.Config{
			RootCAs:    cfg.RootCAs,
			MinVersion: tls.VersionTLS12,
			// ServerName is set by the Transport, per connection, from the
			// URL's host.
		},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    c.timeout,
		DisableCompression:     true, // the body the guest sees is the body sent
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return c
}

// Response is what came back from an egress call.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // read in full, at most Config.MaxResponse bytes
}

// Do performs one call for a function whose grants are prefixes: method on
// rawURL with header and body. It follows redirects that the grants also
// cover, and returns the final response with its body read in full.
//
// Do returns a *DeniedError if the grants do not allow the call or one of
// its redirects, or a refused address was dialled; an error wrapping
// ErrInvalidRequest, ErrRequestTooLarge, ErrResponseTooLarge, ErrTimeout or
// ErrTooManyRedirects for those; any other error is a network or TLS
// failure. Hop-by-hop headers and Content-Length are dropped from header;
// a Host header is refused. The call ends at Config.Timeout or when ctx
// ends, whichever comes first.
func (c *Client) Do(ctx context.Context, prefixes []Prefix, method, rawURL string, header http.Header, body []byte) (*Response, error) {
	if !validToken(method) {
		return nil, fmt.Errorf("%w: method %q is not a token", ErrInvalidRequest, truncate(method))
	}
	if method == http.MethodConnect {
		return nil, fmt.Errorf("%w: method CONNECT is not supported", ErrInvalidRequest)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &DeniedError{Target: "(unparsable URL)", Reason: "not a URL"}
	}
	if d := check(prefixes, u); d != nil {
		return nil, d
	}
	name := method + " " + describe(u)
	if n := int64(len(body)); n > c.maxRequest {
		return nil, fmt.Errorf("egress %s: %w: %d bytes, more than %d", name, ErrRequestTooLarge, n, c.maxRequest)
	}
	hdr, err := cleanHeader(header)
	if err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			d.Target = describe(u)
			return nil, d
		}
		return nil, fmt.Errorf("egress %s: %w", name, err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, namedKey{}, namedBy(prefixes))
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body) // NewRequest sets GetBody, for 307 and 308
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("egress %s: %w: %w", name, ErrInvalidRequest, err)
	}
	// Check what is sent, not what was asked for.
	if d := check(prefixes, req.URL); d != nil {
		return nil, d
	}
	req.Header = hdr

	hc := &http.Client{
		Transport: c.transport,
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			return c.checkRedirect(prefixes, next, via)
		},
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.callError(ctx, name, err)
	}
	defer resp.Body.Close()

	if resp.ContentLength > c.maxResponse {
		return nil, fmt.Errorf("egress %s: %w: %d bytes, more than %d", name, ErrResponseTooLarge, resp.ContentLength, c.maxResponse)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResponse+1))
	if err == nil && ctx.Err() != nil {
		// net/http can end a body that ctx cut short with io.EOF, as if
		// it were whole; a cut body is never passed off as complete.
		err = ctx.Err()
	}
	if err != nil {
		return nil, c.callError(ctx, name, err)
	}
	if int64(len(b)) > c.maxResponse {
		return nil, fmt.Errorf("egress %s: %w: more than %d bytes", name, ErrResponseTooLarge, c.maxResponse)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// check returns a *DeniedError unless a prefix covers u.
func check(prefixes []Prefix, u *url.URL) *DeniedError {
	t, reason := parseTarget(u)
	if reason != "" {
		return &DeniedError{Target: describe(u), Reason: reason}
	}
	for _, p := range prefixes {
		if p.covers(t) {
			return nil
		}
	}
	return &DeniedError{Target: describe(u), Reason: "no egress grant covers it"}
}

// checkRedirect decides whether to follow the redirect to next. Grants
// apply to each hop as to the first (so an https to http downgrade needs
// an http grant), and credentials do not cross to another origin.
func (c *Client) checkRedirect(prefixes []Prefix, next *http.Request, via []*http.Request) error {
	if c.maxRedirects < 0 {
		return http.ErrUseLastResponse
	}
	if len(via) > c.maxRedirects {
		return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, c.maxRedirects)
	}
	if d := check(prefixes, next.URL); d != nil {
		return d
	}
	if prev := via[len(via)-1].URL; !sameOrigin(prev, next.URL) {
		// net/http keeps these for a subdomain; a grant for one host is
		// not a grant to hand its credentials to another.
		for _, k := range []string{"Authorization", "Proxy-Authorization", "Cookie", "Cookie2"} {
			next.Header.Del(k)
		}
	}
	return nil
}

// sameOrigin reports whether a and b have the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	ta, ra := parseTarget(a)
	tb, rb := parseTarget(b)
	return ra == "" && rb == "" && ta.scheme == tb.scheme && ta.host == tb.host && ta.port == tb.port
}

// callError turns an error from sending or reading into what Do returns:
// the *DeniedError as it is, timeouts as ErrTimeout. The *url.Error that
// net/http wraps around it is dropped: it holds the full URL, query and
// all, and a query may hold credentials.
func (c *Client) callError(ctx context.Context, name string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var d *DeniedError
	if errors.As(err, &d) {
		out := *d
		if out.Target == "" && ue != nil {
			// A refusal at dial time: ue names the hop being sent.
			if u, perr := url.Parse(ue.URL); perr == nil {
				out.Target = describe(u)
			}
		}
		return &out
	}
	var te interface{ Timeout() bool }
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &te) && te.Timeout() {
		return fmt.Errorf("egress %s: %w: %w", name, ErrTimeout, err)
	}
	return fmt.Errorf("egress %s: %w", name, err)
}

// hopByHop are the headers that describe one connection, not the request
// (RFC 9110, section 7.6.1). Content-Length is left to the body.
var hopByHop = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Content-Length":      true,
}

// cleanHeader returns a copy of h without hop-by-hop headers (also those
// Connection names), or an error for a malformed name or value, or a
// *DeniedError for a Host header.
func cleanHeader(h http.Header) (http.Header, error) {
	named := map[string]bool{}
	for k, vs := range h {
		if textproto.CanonicalMIMEHeaderKey(k) != "Connection" {
			continue
		}
		for _, v := range vs {
			for f := range strings.SplitSeq(v, ",") {
				named[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f))] = true
			}
		}
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		if !validToken(k) {
			return nil, fmt.Errorf("%w: header name %q is not a token", ErrInvalidRequest, truncate(k))
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == "Host" {
			return nil, &DeniedError{Reason: "a Host header may not be set"}
		}
		if hopByHop[ck] || named[ck] {
			continue
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return nil, fmt.Errorf("%w: header %s has a control character", ErrInvalidRequest, ck)
			}
		}
		out[ck] = append(out[ck], vs...)
	}
	return out, nil
}

// validToken reports whether s is an RFC 9110 token, as methods and header
// names must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v holds no control character but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// describe returns u as errors and audit records may show it: without user
// info, query or fragment, which may hold credentials.
func describe(u *url.URL) string {
	if u == nil {
		return ""
	}
	v := *u
	v.User = nil
	v.RawQuery, v.ForceQuery = "", false
	v.Fragment, v.RawFragment = "", ""
	return truncate(v.String())
}

// truncate bounds text from a guest before it goes into an error.
func truncate(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
