// Package cgi speaks CGI/1.1 (RFC 3875) to functions: it builds the
// meta-variables a request becomes and parses the response a function writes.
//
// Only what a function needs crosses: the declared environment, the CGI
// variables and the request headers as HTTP_*, never Authorization or Cookie
// unless asked for, and never the node's own environment.
package cgi

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Request is what a function is told about one HTTP request.
type Request struct {
	Method      string
	PathInfo    string // the path after /fn/NAME, decoded: "" or starting with "/"
	RawPath     string // the same path as the client sent it, still escaped; "" means PathInfo escaped
	RawQuery    string
	Proto       string // e.g. "HTTP/1.1"
	Host        string // the Host header; SERVER_NAME and SERVER_PORT come from it
	RemoteAddr  string // "ip:port" of the caller
	RemoteUser  string // the caller's identity, "" for anonymous callers
	ContentLen  int
	Header      http.Header
	PassHeaders []string // credential headers the manifest lets through, e.g. "Authorization"
	// Trigger, if set, is what brought the invocation, as MOAT_TRIGGER:
	// http, fn, queue, schedule or replay. A function can tell an event
	// Moat delivered from an HTTP request that carries ce-* headers.
	Trigger string
}

// credentialHeaders never reach a function unless its manifest names them.
var credentialHeaders = map[string]bool{"Authorization": true, "Cookie": true, "Proxy-Authorization": true}

// Env returns the guest environment for req: the declared variables, the
// request headers as HTTP_*, then the CGI meta-variables. A declared
// variable never replaces a CGI one or a header (the manifest refuses such
// names; Env drops them too). Headers whose names hold an underscore are
// dropped, as nginx does, so that "X_Real_IP" cannot pose as "X-Real-IP".
// The result is sorted by name.
func Env(declared map[string]string, req *Request) []string {
	env := make([]string, 0, len(declared)+len(req.Header)+16)
	for k, v := range declared {
		if cgiNames[k] || strings.HasPrefix(k, "HTTP_") || strings.HasPrefix(k, "MOAT_") {
			continue
		}
		env = append(env, k+"="+v)
	}
	for k, vs := range req.Header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if credentialHeaders[ck] && !slices.ContainsFunc(req.PassHeaders, func(h string) bool { return strings.EqualFold(h, ck) }) {
			continue
		}
		if ck == "Content-Type" || ck == "Content-Length" || ck == "Proxy" || strings.Contains(ck, "_") {
			continue // CONTENT_TYPE and CONTENT_LENGTH carry these; HTTP_PROXY is httpoxy
		}
		env = append(env, "HTTP_"+strings.ToUpper(strings.ReplaceAll(ck, "-", "_"))+"="+strings.Join(vs, ", "))
	}
	host, port := req.Host, "80"
	if h, p, err := net.SplitHostPort(req.Host); err == nil {
		host, port = h, p
	}
	remote := req.RemoteAddr
	if h, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		remote = h
	}
	env = append(env,
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_SOFTWARE=moat",
		"SERVER_PROTOCOL="+req.Proto,
		"SERVER_NAME="+host,
		"SERVER_PORT="+port,
		"REQUEST_METHOD="+req.Method,
		"SCRIPT_NAME=",
		"PATH_INFO="+req.PathInfo,
		"QUERY_STRING="+req.RawQuery,
		"REQUEST_URI="+requestURI(req),
		"REMOTE_ADDR="+remote,
		"REMOTE_HOST="+remote,
		"REMOTE_USER="+req.RemoteUser,
	)
	if req.Trigger != "" {
		env = append(env, "MOAT_TRIGGER="+req.Trigger)
	}
	if ct := req.Header.Get("Content-Type"); req.ContentLen > 0 || ct != "" {
		env = append(env, "CONTENT_LENGTH="+strconv.Itoa(req.ContentLen), "CONTENT_TYPE="+ct)
	}
	sort.Strings(env)
	return env
}

// cgiNames are the meta-variables Env sets.
var cgiNames = map[string]bool{
	"GATEWAY_INTERFACE": true, "SERVER_SOFTWARE": true, "SERVER_PROTOCOL": true, "SERVER_NAME": true,
	"SERVER_PORT": true, "REQUEST_METHOD": true, "SCRIPT_NAME": true, "PATH_INFO": true,
	"QUERY_STRING": true, "REQUEST_URI": true, "REMOTE_ADDR": true, "REMOTE_HOST": true,
	"REMOTE_USER": true, "CONTENT_LENGTH": true, "CONTENT_TYPE": true,
}

// requestURI is REQUEST_URI: the request target as the client sent it (below
// the function's prefix), never built from the decoded PATH_INFO, in which
// an escaped "?", "#" or "%" would change what the function parses. One
// spelling is changed: a path starting "//" would be read as "//host/path"
// by URL parsers, so its second slash is sent as "%2F", which decodes to the
// same path.
func requestURI(req *Request) string {
	u := req.RawPath
	if u == "" {
		u = (&url.URL{Path: req.PathInfo}).EscapedPath()
	}
	if u == "" {
		u = "/"
	}
	if strings.HasPrefix(u, "//") {
		u = "/%2F" + u[2:]
	}
	if req.RawQuery != "" {
		u += "?" + req.RawQuery
	}
	return u
}

// Response is a parsed CGI response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrMalformed reports a response that does not follow CGI/1.1.
var ErrMalformed = errors.New("malformed CGI response")

const (
	maxHeaderBytes = 64 << 10
	maxHeaders     = 100
)

// reserved response headers a function may not set: hop-by-hop and framing
// headers the node computes, and headers that speak for the whole origin,
// which every function on the node shares (Alt-Svc would move all of its
// traffic, Clear-Site-Data wipe every function's cookies and storage,
// Strict-Transport-Security is the node's).
var reserved = map[string]bool{
	"Connection": true, "Content-Length": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Status": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Http2-Settings": true,
	"Alt-Svc": true, "Clear-Site-Data": true, "Strict-Transport-Security": true,
}

// Reserved reports whether a function may not set the response header
// name, in any spelling: case, and "_" for "-" (which some proxies and CGI
// libraries treat as the same) do not matter.
func Reserved(name string) bool {
	return reservedCanonical(textproto.CanonicalMIMEHeaderKey(name))
}

// reservedCanonical is Reserved of a name already canonical: only a name
// holding "_" is canonicalized again, in its "-" spelling.
func reservedCanonical(n string) bool {
	if strings.IndexByte(n, '_') >= 0 {
		n = textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(n, "_", "-"))
	}
	return reserved[n] || strings.HasPrefix(n, "Moat-") || strings.HasPrefix(n, "Proxy-")
}

// ParseResponse parses out, the bytes a function wrote to stdout: header
// lines, an empty line, the body. Lines may end in LF or CRLF. A missing
// Status means 200, or 302 with a Location. It fails with ErrMalformed on a
// header block over 64KiB, more than 100 headers, a line without a colon, an
// invalid header name or value, or a Status outside 200-599 (an interim 1xx
// or a 101 would make the node speak protocol the client did not ask for).
// Headers reserved to the platform (hop-by-hop, framing, origin-wide,
// Moat-*), in any spelling, are dropped.
func ParseResponse(out []byte) (*Response, error) {
	resp := &Response{Header: make(http.Header)}
	rest := out
	n := 0
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, fmt.Errorf("%w: no end of headers", ErrMalformed)
		}
		if len(out)-len(rest)+i > maxHeaderBytes {
			return nil, fmt.Errorf("%w: header block over %d bytes", ErrMalformed, maxHeaderBytes)
		}
		line := rest[:i]
		rest = rest[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		n++
		if n > maxHeaders {
			return nil, fmt.Errorf("%w: more than %d headers", ErrMalformed, maxHeaders)
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("%w: header line %d has no colon", ErrMalformed, n)
		}
		name := string(k)
		value := strings.TrimSpace(string(v))
		if !validName(name) {
			return nil, fmt.Errorf("%w: header line %d: invalid name %q", ErrMalformed, n, name)
		}
		if !validValue(value) {
			return nil, fmt.Errorf("%w: header %s: invalid value", ErrMalformed, name)
		}
		if strings.EqualFold(name, "Status") {
			code, err := parseStatus(value)
			if err != nil {
				return nil, err
			}
			resp.Status = code
			continue
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if reservedCanonical(name) {
			continue
		}
		resp.Header.Add(name, value)
	}
	resp.Body = rest
	if resp.Status == 0 {
		resp.Status = http.StatusOK
		if resp.Header.Get("Location") != "" {
			resp.Status = http.StatusFound
		}
	}
	return resp, nil
}

func parseStatus(v string) (int, error) {
	code, _, _ := strings.Cut(v, " ")
	c, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || c < 200 || c > 599 {
		return 0, fmt.Errorf("%w: bad Status %q", ErrMalformed, v)
	}
	return c, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
