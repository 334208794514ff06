//go:build wasip1

package fn

import (
	"net/http"
	"net/http/cgi"
	"strings"
)

// A reactor's requests start from the memory its initialisation left, so
// whatever the standard library caches on first use (header names, MIME
// types, URL parsing) is rebuilt in every request unless it is already in
// the snapshot. warm sends one made-up request through the SDK's own path,
// without the handler, at initialisation. Programs can do the same for
// their own types: an encoding/json round trip of the request and response
// types in init is the largest saving (docs/snapshots.md).
func init() {
	env := map[string]string{
		"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/warm?a=1",
		"PATH_INFO": "/warm", "QUERY_STRING": "a=1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
		"HTTP_HOST": "localhost", "HTTP_ACCEPT": "*/*", "HTTP_USER_AGENT": "moat", "CONTENT_TYPE": "application/json",
		"CONTENT_LENGTH": "2", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "1",
	}
	enc := appendFields(nil, nil)
	decodeRequest(enc)
	req, err := cgi.RequestFromMap(env)
	if err != nil {
		return
	}
	req.Header.Get("Content-Type")
	w := &response{header: http.Header{}}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(strings.TrimSpace(" {} ")))
	w.cgi()
	(&response{header: http.Header{}}).cgi()
	http.DetectContentType([]byte("<html>"))
}
