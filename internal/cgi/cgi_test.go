package cgi

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name, out  string
		wantStatus int
		wantHeader map[string]string
		wantBody   string
		wantErr    string
		// onlyHeaders, if not 0, is how many headers may pass.
		onlyHeaders int
	}{
		{name: "plain", out: "Content-Type: text/plain\n\nhi", wantStatus: 200, wantHeader: map[string]string{"Content-Type": "text/plain"}, wantBody: "hi"},
		{name: "crlf", out: "Status: 201 Created\r\nX-A: b\r\n\r\nbody\r\n", wantStatus: 201, wantHeader: map[string]string{"X-A": "b"}, wantBody: "body\r\n"},
		{name: "location", out: "Location: /x\n\n", wantStatus: 302, wantHeader: map[string]string{"Location": "/x"}},
		{name: "no headers", out: "\nbody", wantStatus: 200, wantBody: "body"},
		{name: "reserved dropped", out: "Content-Length: 99\nTransfer-Encoding: chunked\nMoat-Invocation-Id: forged\nConnection: close\nX-Ok: 1\n\n", wantStatus: 200, wantHeader: map[string]string{"Content-Length": "", "Transfer-Encoding": "", "Moat-Invocation-Id": "", "Connection": "", "X-Ok": "1"}},
		{name: "empty", out: "", wantErr: "no end of headers"},
		{name: "no blank line", out: "Content-Type: text/plain\n", wantErr: "no end of headers"},
		{name: "no colon", out: "garbage\n\n", wantErr: "no colon"},
		{name: "bad name", out: "Bad Name: x\n\n", wantErr: "invalid name"},
		{name: "bad value", out: "X-A: a\x00b\n\n", wantErr: "invalid value"},
		{name: "bad status word", out: "Status: ok\n\n", wantErr: "bad Status"},
		{name: "status out of range", out: "Status: 999\n\n", wantErr: "bad Status"},
		{name: "status two digits", out: "Status: 20\n\n", wantErr: "bad Status"},
		{name: "switching protocols", out: "Status: 101 Switching Protocols\nUpgrade: websocket\n\n", wantErr: "bad Status"},
		{name: "interim", out: "Status: 100\n\n", wantErr: "bad Status"},
		{name: "early hints", out: "Status: 103\nLink: </x>\n\n", wantErr: "bad Status"},
		{name: "status with sign", out: "Status: +200\n\n", wantErr: "bad Status"},
		{name: "status lower case", out: "status: 201\n\n", wantStatus: 201},
		{name: "reserved in any spelling", out: "Moat_Invocation_Id: forged\nmoat-caller: x\ntransfer_encoding: chunked\nCONNECTION: close\nContent_Length: 1\nkeep_alive: 1\nUPGRADE: h2c\nProxy_Authenticate: Basic\nalt-svc: h2=\"evil:443\"\nClear-Site-Data: \"*\"\nStrict_Transport_Security: max-age=0\nX_Custom: kept\n\n",
			wantStatus: 200, wantHeader: map[string]string{"Moat-Invocation-Id": "", "Moat_invocation_id": "", "X_custom": "kept"}, onlyHeaders: 1},
		{name: "too many headers", out: strings.Repeat("X-A: b\n", 101) + "\n", wantErr: "more than 100 headers"},
		{name: "huge header", out: "X-A: " + strings.Repeat("a", 70<<10) + "\n\n", wantErr: "over 65536 bytes"},
		{name: "response splitting", out: "X-A: a\rSet-Cookie: x\n\n", wantErr: "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ParseResponse([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseResponse(%q) error = %v, want %q", tt.out, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse(%q): %v", tt.out, err)
			}
			if resp.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.Status, tt.wantStatus)
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.onlyHeaders != 0 && len(resp.Header) != tt.onlyHeaders {
				t.Errorf("headers passed: %v, want %d", resp.Header, tt.onlyHeaders)
			}
			if string(resp.Body) != tt.wantBody {
				t.Errorf("body = %q, want %q", resp.Body, tt.wantBody)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	req := &Request{
		Method: "POST", PathInfo: "/a/b", RawQuery: "x=1", Proto: "HTTP/1.1",
		Host: "example.test:8080", RemoteAddr: "192.0.2.7:5555", RemoteUser: "key:k1",
		ContentLen: 5,
		Header: http.Header{
			"Content-Type":  {"application/json"},
			"Authorization": {"Bearer secret-token"},
			"Cookie":        {"session=abc"},
			"Proxy":         {"http://evil"},
			"X-Trace":       {"a", "b"},
			"X_trace":       {"smuggled"},
		},
	}
	env := Env(map[string]string{"TITLE": "Widgets", "PATH_INFO": "/forged"}, req)
	want := []string{
		"CONTENT_LENGTH=5", "CONTENT_TYPE=application/json", "GATEWAY_INTERFACE=CGI/1.1",
		"HTTP_X_TRACE=a, b", "PATH_INFO=/a/b", "QUERY_STRING=x=1", "REMOTE_ADDR=192.0.2.7",
		"REMOTE_USER=key:k1", "REQUEST_METHOD=POST", "REQUEST_URI=/a/b?x=1", "SERVER_NAME=example.test",
		"SERVER_PORT=8080", "SERVER_PROTOCOL=HTTP/1.1", "TITLE=Widgets",
	}
	for _, w := range want {
		if !slices.Contains(env, w) {
			t.Errorf("Env() lacks %q; got %q", w, env)
		}
	}
	for _, e := range env {
		for _, bad := range []string{"secret-token", "session=abc", "HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_COOKIE", "/forged", "smuggled"} {
			if strings.Contains(e, bad) {
				t.Errorf("Env() holds %q: %q", bad, e)
			}
		}
	}
	req.PassHeaders = []string{"authorization"}
	if env := Env(nil, req); !slices.Contains(env, "HTTP_AUTHORIZATION=Bearer secret-token") {
		t.Errorf("Env() with PassHeaders lacks HTTP_AUTHORIZATION: %q", env)
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("Status: 200 OK\nContent-Type: text/plain\n\nhello"))
	f.Add([]byte("Location: /x\r\n\r\n"))
	f.Add([]byte("X: y\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		resp, err := ParseResponse(out)
		if err != nil {
			return
		}
		if resp.Status < 200 || resp.Status > 599 {
			t.Fatalf("status %d accepted", resp.Status)
		}
		for k, vs := range resp.Header {
			if !validName(k) || Reserved(k) || k != http.CanonicalHeaderKey(k) {
				t.Fatalf("header name %q accepted", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header value %q accepted", v)
				}
			}
		}
	})
}
