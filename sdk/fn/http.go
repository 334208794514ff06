package fn

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// HTTPClient returns an http.Client whose requests leave through the host
// (see Transport). The host follows redirects itself, within the same egress
// rules, so the client does not: the response it returns is the host's final
// one, a 3xx included.
func HTTPClient() *http.Client {
	return &http.Client{
		Transport: &Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Transport is an http.RoundTripper that sends each request through the
// host. The host allows only URLs under the manifest's egress prefixes
// (permissions.egress), checks certificates, follows redirects and caps the
// response's size and time; a URL outside every prefix fails with ErrDenied.
//
// RoundTrip reads the request body whole before the call and closes it. The
// request's context is checked once, before the call: the call itself runs
// to its end or to the invocation's timeout. The URL's fragment is not sent.
//
// The zero value is ready to use, and safe for concurrent use.
type Transport struct {
	host caller
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip sends req through the host and returns the host's response,
// whose body is already in memory.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(opHTTPDo, req)
	if err != nil {
		return nil, err
	}
	if req.URL == nil {
		return nil, &Error{Op: opName(opHTTPDo), Code: Invalid, Message: "request has no URL"}
	}
	u := *req.URL
	u.Fragment, u.RawFragment = "", ""
	b := appendString(nil, method(req))
	b = appendString(b, u.String())
	return send(t.host, opHTTPDo, b, req, body)
}

// Invoke calls the function called function with req and returns its
// response. The manifest must name the function (permissions.invoke), or
// Invoke fails with ErrDenied. The callee's own auth and input schema apply
// to the call as to any other.
//
// The callee sees req.URL's path and query as the path under its name
// (/fn/NAME/PATH?QUERY); the scheme and host are ignored. req's method,
// headers and body are sent as they are; the body is read whole and closed.
// req's context is checked once, before the call.
func Invoke(function string, req *http.Request) (*http.Response, error) {
	return invoke(nil, function, req)
}

// Call is Invoke for a request built from its parts: method ("" means GET),
// path with an optional query, such as "/orders?limit=10", body (nil for
// none) and header (nil for none).
func Call(function, method, path string, body []byte, header http.Header) (*http.Response, error) {
	req, err := newRequest(method, path, body, header)
	if err != nil {
		return nil, &Error{Op: opName(opFnInvoke), Code: Invalid, Message: err.Error()}
	}
	return Invoke(function, req)
}

func newRequest(method, path string, body []byte, header http.Header) (*http.Request, error) {
	req, err := http.NewRequest(method, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if header != nil {
		req.Header = header.Clone()
	}
	return req, nil
}

func invoke(host caller, function string, req *http.Request) (*http.Response, error) {
	body, err := readBody(opFnInvoke, req)
	if err != nil {
		return nil, err
	}
	if req.URL == nil {
		return nil, &Error{Op: opName(opFnInvoke), Code: Invalid, Message: "request has no URL"}
	}
	path := req.URL.RequestURI()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	b := appendString(nil, function)
	b = appendString(b, method(req))
	b = appendString(b, path)
	return send(host, opFnInvoke, b, req, body)
}

// readBody reads and closes req's body, if it has one.
func readBody(op uint32, req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	if cerr := req.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read request body: %w", opName(op), err)
	}
	return body, nil
}

func method(req *http.Request) string {
	if req.Method == "" {
		return http.MethodGet
	}
	return req.Method
}

// send completes the request b of op, which begins with the op's own
// fields, with req's headers and body, calls the host, and decodes its reply
// into a response to req.
func send(host caller, op uint32, b []byte, req *http.Request, body []byte) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	b = appendFields(b, headerFields(req.Header))
	b = appendBytes(b, body)
	reply, err := host.call(op, b)
	if err != nil {
		return nil, err
	}
	r, err := decodeReply(reply)
	if err != nil {
		return nil, malformed(op, err)
	}
	return newResponse(r, req), nil
}

// headerFields returns h as fields, sorted by name, one per value.
func headerFields(h http.Header) []field {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	var fs []field
	for _, name := range names {
		for _, v := range h[name] {
			fs = append(fs, field{name, v})
		}
	}
	return fs
}

func newResponse(r reply, req *http.Request) *http.Response {
	h := make(http.Header, len(r.header))
	for _, f := range r.header {
		h.Add(f.name, f.value)
	}
	code := int(r.status)
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + text,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(r.body)),
		ContentLength: int64(len(r.body)),
		Request:       req,
	}
}
