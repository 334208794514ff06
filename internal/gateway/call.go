package gateway

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/moatfn/moat/internal/host"
)

// Function-to-function calls go through ServeHTTP like any request, so the
// callee's callers list, method, body cap, input schema, rates, budget and
// concurrency apply to them as to a call from outside.

type callerKey struct{}

// callerFrom returns the calling function's invocation of a request made by
// Invoke, or nil for a request from outside.
func callerFrom(ctx context.Context) *host.Invocation {
	inv, _ := ctx.Value(callerKey{}).(*host.Invocation)
	return inv
}

func trigger(from *host.Invocation) string {
	if from != nil {
		return "fn"
	}
	return "http"
}

// headersNotPassed are request headers a calling function cannot set: the
// callee's identity comes from the call chain, never from a credential.
var headersNotPassed = []string{"Authorization", "Cookie", "Proxy-Authorization", "Host", "Content-Length", "Transfer-Encoding", "Connection"}

// Invoke calls function on behalf of from, a running invocation, and
// returns the callee's response. It implements host.Invoker.
func (g *Gateway) Invoke(ctx context.Context, from *host.Invocation, function, method, target string, header http.Header, body []byte) (int, http.Header, []byte, error) {
	// The callee runs within the caller's time, but sees nothing else of
	// the caller's context.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	cctx, cancel := context.WithDeadline(context.WithValue(context.Background(), callerKey{}, from), deadline)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	r, err := http.NewRequestWithContext(cctx, method, "http://moat"+Prefix+function+target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range header {
		r.Header[k] = vs
	}
	for _, h := range headersNotPassed {
		r.Header.Del(h)
	}
	r.RemoteAddr = from.Source
	r.Header.Set("User-Agent", "moat-fn/"+from.Function)
	w := &callResponse{header: http.Header{}}
	g.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.status, w.header, w.body.Bytes(), nil
}

// recorder  is the http.ResponseWriter of a function-to-function call.
type callResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *callResponse) Header() http.Header { return w.header }

func (w *callResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *callResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
