package fn

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cgi"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The handler Handle registers, served by Main (a command module) or by the
// export moat_handle (a reactor module).
var (
	handlerMu sync.Mutex
	handler   http.Handler
)

// Handle registers h as the function's handler. Call it from an init
// function (or a package variable's initialiser), so that it runs whichever
// way the function is built:
//
//   - as a reactor, the fast path (GOOS=wasip1 GOARCH=wasm go build
//     -buildmode=c-shared): Moat runs the package's initialisation once, at
//     deploy, keeps the memory it leaves as a snapshot, and serves every
//     request from a fresh copy of that snapshot through the export
//     moat_handle. main is never called.
//   - as a command, the plain path (go build without -buildmode): every
//     request starts a fresh Go runtime and runs main, which calls [Main].
//
// Either way no request sees anything of another: each runs in an instance
// of its own, restored from the same initial state.
func Handle(h http.Handler) {
	handlerMu.Lock()
	defer handlerMu.Unlock()
	handler = h
}

// HandleFunc registers f as the function's handler; see [Handle].
func HandleFunc(f func(http.ResponseWriter, *http.Request)) { Handle(http.HandlerFunc(f)) }

// Main serves the one request of a command module with the handler [Handle]
// registered, reading the CGI/1.1 request from the environment and standard
// input and writing the response to standard output. A reactor module never
// calls it.
func Main() {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if err := serve(env, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fn:", err)
		os.Exit(1)
	}
}

// serve runs the registered handler on the request that env (the CGI
// variables) and body describe and writes the CGI response to out.
func serve(env map[string]string, body io.Reader, out io.Writer) error {
	handlerMu.Lock()
	h := handler
	handlerMu.Unlock()
	if h == nil {
		return fmt.Errorf("no handler: call fn.Handle from an init function")
	}
	req, err := cgi.RequestFromMap(env)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if req.ContentLength > 0 {
		req.Body = io.NopCloser(io.LimitReader(body, req.ContentLength))
	} else {
		req.Body = http.NoBody
	}
	w := &response{header: http.Header{}}
	h.ServeHTTP(w, req)
	_, err = out.Write(w.cgi())
	return err
}

// response buffers a handler's response and renders it as a CGI response.
// The node caps what a function may write, so buffering is bounded.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("fn: invalid WriteHeader code " + strconv.Itoa(code))
	}
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush makes the response an http.Flusher; the whole body is sent at the
// end anyway.
func (w *response) Flush() { w.WriteHeader(http.StatusOK) }

func (w *response) cgi() []byte {
	w.WriteHeader(http.StatusOK)
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	b := make([]byte, 0, w.body.Len()+256)
	b = append(b, "Status: "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(w.status)...)
	b = append(b, "\r\n"...)
	for _, k := range slices.Sorted(maps.Keys(w.header)) {
		for _, v := range w.header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			// A header value cannot carry a line break into the response.
			for i := 0; i < len(v); i++ {
				if c := v[i]; c == '\r' || c == '\n' {
					b = append(b, ' ')
				} else {
					b = append(b, c)
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	return append(b, w.body.Bytes()...)
}

// decodeRequest decodes the reply of op request: the CGI variables as
// name/value pairs.
func decodeRequest(reply []byte) (map[string]string, error) {
	d := decoder{b: reply}
	fs := d.fields()
	if err := d.finish(); err != nil {
		return nil, err
	}
	env := make(map[string]string, len(fs))
	for _, f := range fs {
		env[f.name] = f.value
	}
	return env, nil
}
