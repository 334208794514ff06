package fn

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// body is a request body that records whether it was closed.
type body struct {
	io.Reader
	closed bool
}

func (b *body) Close() error { b.closed = true; return nil }

func newBody(s string) *body { return &body{Reader: strings.NewReader(s)} }

func TestTransportRequest(t *testing.T) {
	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
		body   string
		want   []any // method, url, headers, body
	}{
		{
			name: "post", method: "POST", url: "https://mail.example.net/v3/send?to=a%40b#top",
			header: http.Header{"Content-Type": {"application/json"}, "X-Tag": {"a", "b"}, "Accept": {"*/*"}},
			body:   `{"to":"a@b"}`,
			want: []any{"POST", "https://mail.example.net/v3/send?to=a%40b", []field{
				{"Accept", "*/*"}, {"Content-Type", "application/json"}, {"X-Tag", "a"}, {"X-Tag", "b"},
			}, `{"to":"a@b"}`},
		},
		{
			name: "get without body", method: "", url: "https://api.example.net/items",
			want: []any{"GET", "https://api.example.net/items", []field{}, ""},
		},
		{
			name: "user info kept", method: "GET", url: "https://u:p@api.example.net/",
			want: []any{"GET", "https://u:p@api.example.net/", []field{}, ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != nil {
				req.Header = tt.header
			}
			b := newBody(tt.body)
			if tt.body != "" {
				req.Body = b
			}
			host := &fakeHost{reply: encodeValues(204, []field{}, "")}
			if _, err := (&Transport{host: host.call}).RoundTrip(req); err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			host.check(t, opHTTPDo, "bbhb", tt.want...)
			if tt.body != "" && !b.closed {
				t.Error("RoundTrip left the request body open")
			}
		})
	}
}

func TestTransportResponse(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://api.example.net/", nil)
	host := &fakeHost{reply: encodeValues(201, []field{
		{"content-type", "text/plain"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"},
	}, "hello")}
	resp, err := (&Transport{host: host.call}).RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if resp.StatusCode != 201 || resp.Status != "201 Created" {
		t.Errorf("status = %d %q, want 201 %q", resp.StatusCode, resp.Status, "201 Created")
	}
	if resp.Proto != "HTTP/1.1" || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Errorf("proto = %s %d.%d, want HTTP/1.1 1.1", resp.Proto, resp.ProtoMajor, resp.ProtoMinor)
	}
	want := http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}}
	if !reflect.DeepEqual(resp.Header, want) {
		t.Errorf("header = %v, want %v", resp.Header, want)
	}
	if resp.ContentLength != 5 || resp.Request != req {
		t.Errorf("ContentLength = %d, Request = %p, want 5, %p", resp.ContentLength, resp.Request, req)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "hello" {
		t.Errorf("body = %q, %v, want hello", got, err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("Body.Close: %v", err)
	}

	host.reply = encodeValues(799, []field{}, "")
	resp, err = (&Transport{host: host.call}).RoundTrip(req)
	if err != nil || resp.Status != "799 status code 799" {
		t.Errorf("RoundTrip(799) = %v, %v, want status %q", resp, err, "799 status code 799")
	}
}

func TestTransportErrors(t *testing.T) {
	denied := &Error{Op: "http.do", Code: Denied, Message: "not under an egress prefix"}
	tests := []struct {
		name  string
		reply []byte
		err   error
		want  error
	}{
		{"host error", nil, denied, ErrDenied},
		{"status out of range", encodeValues(42, []field{}, ""), nil, ErrInvalid},
		{"trailing bytes", append(encodeValues(200, []field{}, ""), 0), nil, ErrInvalid},
		{"empty reply", nil, nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://api.example.net/", nil)
			host := &fakeHost{reply: tt.reply, err: tt.err}
			resp, err := (&Transport{host: host.call}).RoundTrip(req)
			var e *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Op != "http.do" {
				t.Fatalf("RoundTrip = %v, %v, want http.do error %v", resp, err, tt.want)
			}
		})
	}
}

func TestTransportCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := newBody("x")
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://api.example.net/", b)
	host := &fakeHost{reply: encodeValues(200, []field{}, "")}
	if _, err := (&Transport{host: host.call}).RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip with a canceled context error = %v, want %v", err, context.Canceled)
	}
	if len(host.calls) != 0 {
		t.Errorf("a canceled request made %d host calls, want 0", len(host.calls))
	}
	if !b.closed {
		t.Error("a canceled request left its body open")
	}
}

// The host follows redirects, so the client returns a 3xx as it comes.
func TestHTTPClientRedirect(t *testing.T) {
	c := HTTPClient()
	if _, ok := c.Transport.(*Transport); !ok {
		t.Fatalf("HTTPClient().Transport = %T, want *Transport", c.Transport)
	}
	host := &fakeHost{reply: encodeValues(302, []field{{"Location", "https://elsewhere.example/"}}, "")}
	c.Transport = &Transport{host: host.call}
	resp, err := c.Get("https://api.example.net/old")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if resp.StatusCode != 302 || len(host.calls) != 1 {
		t.Errorf("Get = %d after %d host calls, want 302 after 1", resp.StatusCode, len(host.calls))
	}
}

func TestInvokeRequest(t *testing.T) {
	tests := []struct {
		url, wantPath string
	}{
		{"/orders?limit=10", "/orders?limit=10"},
		{"https://ignored.example/x/y?q=1#frag", "/x/y?q=1"},
		{"", "/"},
		{"?only=query", "/?only=query"},
		{"/a%20b/c", "/a%20b/c"},
		{"relative/path", "/relative/path"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			b := newBody("payload")
			req, err := http.NewRequest("PUT", tt.url, b)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Request-Id", "r1")
			host := &fakeHost{reply: encodeValues(200, []field{{"X-From", "render-pdf"}}, "%PDF")}
			resp, err := invoke(host.call, "render-pdf", req)
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			host.check(t, opFnInvoke, "bbbhb", "render-pdf", "PUT", tt.wantPath, []field{{"X-Request-Id", "r1"}}, "payload")
			if !b.closed {
				t.Error("invoke left the request body open")
			}
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("X-From") != "render-pdf" || string(got) != "%PDF" {
				t.Errorf("invoke = %d %v %q", resp.StatusCode, resp.Header, got)
			}
		})
	}
}

func TestCallRequest(t *testing.T) {
	header := http.Header{"Content-Type": {"application/json"}}
	req, err := newRequest("", "/quote?cur=EUR", []byte(`{"n":1}`), header)
	if err != nil {
		t.Fatalf("newRequest: %v", err)
	}
	header.Set("Content-Type", "changed")
	host := &fakeHost{reply: encodeValues(200, []field{}, "")}
	if _, err := invoke(host.call, "pricing", req); err != nil {
		t.Fatalf("invoke: %v", err)
	}
	host.check(t, opFnInvoke, "bbbhb", "pricing", "GET", "/quote?cur=EUR",
		[]field{{"Content-Type", "application/json"}}, `{"n":1}`)

	if _, err := Call("pricing", "BAD METHOD", "/", nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Call with a bad method error = %v, want ErrInvalid", err)
	}
}

func TestInvokeErrors(t *testing.T) {
	req, _ := http.NewRequest("GET", "/", nil)
	host := &fakeHost{err: &Error{Op: "fn.invoke", Code: Denied}}
	if _, err := invoke(host.call, "other", req); !errors.Is(err, ErrDenied) {
		t.Errorf("invoke(denied) error = %v, want ErrDenied", err)
	}
	host = &fakeHost{reply: encodeValues(200, []field{})}
	var e *Error
	if _, err := invoke(host.call, "other", req); !errors.As(err, &e) || e.Code != Invalid || e.Op != "fn.invoke" {
		t.Errorf("invoke(no body in reply) error = %v, want fn.invoke: invalid", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	host = &fakeHost{reply: encodeValues(200, []field{}, "")}
	if _, err := invoke(host.call, "other", req.WithContext(ctx)); !errors.Is(err, context.Canceled) || len(host.calls) != 0 {
		t.Errorf("invoke(canceled) error = %v after %d calls, want %v after 0", err, len(host.calls), context.Canceled)
	}
}
