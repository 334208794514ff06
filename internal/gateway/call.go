package gateway

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/moatfn/moat/internal/host"
	"github.com/moatfn/moat/internal/pipeline"
)

// Function-to-function calls go through the pipeline like any request, so
// the callee's callers list, method, body cap, input schema, rates, budget
// and concurrency apply to them as to a call from outside.

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
	cctx, cancel := context.WithDeadline(context.Background(), deadline)
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
	id := pipeline.NewID()
	inv := g.invocation(nil, r, id, from)
	if len(body) == 0 {
		inv.Body = nil
	}
	res := g.pipe.Run(cctx, inv)
	w := &callResponse{header: http.Header{"Moat-Invocation-Id": {id}}}
	writeResult(w, method, id, res)
	if w.status == 0 {
		w.status = res.Status // 499: the caller is gone
	}
	return w.status, w.header, w.body.Bytes(), nil
}

// callResponse is the http.ResponseWriter of a function-to-function call.
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
