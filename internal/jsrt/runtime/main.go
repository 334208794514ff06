// Command runtime is Moat's JavaScript runtime: a Go reactor on the SDK
// that embeds the goja engine. At deploy, its initialisation reads the
// function's bundled script from stdin, evaluates it and keeps its default
// export; the snapshot taken then holds the engine warm and the module
// evaluated, so each request runs only the handler, in a fresh copy of
// that memory (docs/javascript.md).
//
// The programming model is the Workers one: the script's default export
// has fetch(request, env), which returns a Response or a promise of one.
package main

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"

	"github.com/moatfn/moat/sdk/fn"
)

//go:embed prelude.js
var prelude string

// maxCallStack is the deepest the script's calls may nest (V8's default
// allows about 10,000 frames of a small function). Deeper is a stack
// overflow, which the script cannot catch: the run fails (502) long
// before a runaway recursion could reach the memory cap.
const maxCallStack = 10000

// maxScript bounds the bundled script read at initialisation.
const maxScript = 16 << 20

var (
	vm      *goja.Runtime
	fetch   goja.Callable // the default export's fetch
	handler goja.Value    // the default export, this of fetch
	env     goja.Value
	// makeRequest builds the JS Request of the incoming request.
	makeRequest goja.Callable
	// reply reads a JS Response as [status, headers, body].
	reply goja.Callable
	// timerNext says how long until the next timer is due, timerRun runs
	// those due.
	timerNext, timerRun goja.Callable
)

func init() {
	if nativeBench {
		return // the benchmark loads its own script
	}
	if err := load(); err != nil {
		// Refused at deploy, with the reason in the deploy's answer.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fn.HandleFunc(handle)
}

func main() { fn.Main() }

// load evaluates the prelude and the function's script, read from stdin.
func load() error {
	src, err := io.ReadAll(io.LimitReader(os.Stdin, maxScript+1))
	if err != nil {
		return fmt.Errorf("reading the script: %w", err)
	}
	return loadScript(src)
}

// loadScript evaluates the prelude and src.
func loadScript(src []byte) error {
	if len(src) > maxScript {
		return fmt.Errorf("the script is over %d bytes", maxScript)
	}
	if len(src) == 0 {
		return errors.New("no script: a JavaScript function's bundle is handed to the runtime at deploy")
	}
	vm = goja.New()
	vm.SetMaxCallStackSize(maxCallStack)
	vm.SetFieldNameMapper(goja.UncapFieldNameMapper())
	installNatives(vm)
	if _, err := vm.RunScript("moat:prelude", prelude); err != nil {
		return fmt.Errorf("prelude: %w", err)
	}
	if _, err := vm.RunScript("index.js", string(src)); err != nil {
		return fmt.Errorf("evaluating the script: %w", err)
	}
	mod := vm.Get("__moat_module")
	if mod == nil || goja.IsUndefined(mod) || goja.IsNull(mod) {
		return errors.New("the script defines no module: build it with moat build")
	}
	def := mod.ToObject(vm).Get("default")
	if def == nil || goja.IsUndefined(def) || goja.IsNull(def) {
		return errors.New("the script has no default export: export default { fetch(request, env) { ... } }")
	}
	f, ok := goja.AssertFunction(def.ToObject(vm).Get("fetch"))
	if !ok {
		return errors.New("the default export has no fetch method: export default { fetch(request, env) { ... } }")
	}
	fetch, handler = f, def
	env = vm.Get("__moat_env")
	makeRequest, _ = goja.AssertFunction(vm.Get("__moat_request"))
	reply, _ = goja.AssertFunction(vm.Get("__moat_reply"))
	if warm, ok := goja.AssertFunction(vm.Get("__moat_warm")); ok {
		if _, err := warm(nil); err != nil {
			return fmt.Errorf("warming the runtime: %w", err)
		}
	}
	t := vm.Get("__moat_timers").ToObject(vm)
	timerNext, _ = goja.AssertFunction(t.Get("next"))
	timerRun, _ = goja.AssertFunction(t.Get("run"))
	// Timers the module's evaluation set never fire.
	if reset, ok := goja.AssertFunction(t.Get("reset")); ok {
		if _, err := reset(nil); err != nil {
			return err
		}
	}
	reserveHeadroom()
	return nil
}

// headroom is heap the snapshot holds free for requests. A request that
// allocates within it does not grow the linear memory (the collector, at
// its default pace, runs before the heap outgrows it), so its instance is
// restored in place and kept for the next request; one that grows the
// memory costs a new instance (wazero fills the runtime's table of 16,000
// functions anew: about 2.5 ms).
const headroom = 8 << 20

// spare keeps the compiler from dropping the allocation that reserves the
// headroom.
var spare []byte

// reserveHeadroom grows the heap by headroom and frees it again. The pages
// were never written, so the snapshot holds them as zeros.
func reserveHeadroom() {
	goruntime.GC()
	spare = make([]byte, headroom)
	spare = nil
	goruntime.GC()
}

func handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := newRequest(r, body)
	if err != nil {
		fail(err)
		return
	}
	out, err := fetch(handler, req, env)
	if err != nil {
		fail(err)
		return
	}
	res, err := settle(out)
	if err != nil {
		fail(err)
		return
	}
	if err := writeResponse(w, res); err != nil {
		fail(err)
	}
}

// settle unwraps a promise: the job queue has run when the call returned,
// so a promise still pending waits on a timer, or on nothing. The runtime
// sleeps until the next timer is due and runs it (its jobs run as it
// returns) until the promise settles; the function's timeout bounds it.
func settle(v goja.Value) (goja.Value, error) {
	p, ok := v.Export().(*goja.Promise)
	if !ok {
		return v, nil
	}
	for p.State() == goja.PromiseStatePending {
		next, err := timerNext(nil)
		if err != nil {
			return nil, err
		}
		wait := next.ToFloat()
		if wait < 0 {
			return nil, errors.New("fetch returned a promise that never settled: no timer is pending and nothing else can resolve it")
		}
		if wait > 0 {
			time.Sleep(time.Duration(wait * float64(time.Millisecond)))
		}
		if _, err := timerRun(nil); err != nil {
			return nil, err
		}
	}
	if p.State() == goja.PromiseStateRejected {
		return nil, rejection(p.Result())
	}
	return p.Result(), nil
}

// rejection is the error of a rejected promise: its reason, with the
// stack when it is an Error.
func rejection(reason goja.Value) error {
	if reason == nil {
		return errors.New("rejected")
	}
	if o, ok := reason.(*goja.Object); ok {
		if st := o.Get("stack"); st != nil && !goja.IsUndefined(st) {
			return errors.New(st.String())
		}
	}
	return errors.New(reason.String())
}

// fail ends the run as failed: the error and its stack go to the
// function's log, and the caller gets the node's 502 with the invocation
// id only, as for a Go function that panics. A message thrown by the
// script can hold what the caller must not see (a query, a key, a path),
// so none of it is in the answer.
func fail(err error) {
	msg := err.Error()
	var ex *goja.Exception
	var overflow *goja.StackOverflowError
	switch {
	case errors.As(err, &overflow):
		msg = fmt.Sprintf("stack overflow: calls nested deeper than %d%s", maxCallStack, overflow.String())
	case errors.As(err, &ex) && ex.Value() != nil:
		msg = ex.String()
	}
	fmt.Fprintln(os.Stderr, "uncaught:", msg)
	os.Exit(1)
}

// newRequest makes the JS Request of r.
func newRequest(r *http.Request, body []byte) (goja.Value, error) {
	scheme := "http"
	if r.TLS != nil || os.Getenv("HTTPS") == "on" {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	url := scheme + "://" + host + r.URL.RequestURI()
	var headers [][2]string
	for k, vs := range r.Header {
		for _, v := range vs {
			headers = append(headers, [2]string{strings.ToLower(k), v})
		}
	}
	pairs := make([]any, len(headers))
	for i, h := range headers {
		pairs[i] = vm.NewArray(h[0], h[1])
	}
	// A body of UTF-8 goes in as a string, which text() and json() use as
	// it is; other bytes as an ArrayBuffer.
	var jsBody goja.Value = goja.Null()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if utf8.Valid(body) {
			jsBody = vm.ToValue(string(body))
		} else {
			jsBody = vm.ToValue(vm.NewArrayBuffer(body))
		}
	}
	return makeRequest(nil, vm.ToValue(url), vm.ToValue(r.Method), vm.NewArray(pairs...), jsBody)
}

// writeResponse writes a JS Response.
func writeResponse(w http.ResponseWriter, v goja.Value) error {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return errors.New("fetch returned nothing: return a Response")
	}
	out, err := reply(nil, v)
	if err != nil {
		return err
	}
	if goja.IsNull(out) {
		return fmt.Errorf("fetch returned %s, not a Response", v.String())
	}
	o := out.ToObject(vm)
	status := int(o.Get("0").ToInteger())
	if status < 200 || status > 599 {
		return fmt.Errorf("a Response's status must be 200 to 599, not %d", status)
	}
	h := w.Header()
	flat, _ := o.Get("1").Export().([]any)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		h.Add(k, v)
	}
	body := bytesOf(o.Get("2"))
	w.WriteHeader(status)
	_, err = w.Write(body)
	return err
}

// bytesOf reads a body the prelude made: a string, an ArrayBuffer or a
// typed array; anything else is empty.
func bytesOf(v goja.Value) []byte {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	switch x := v.Export().(type) {
	case string:
		return []byte(x)
	case goja.ArrayBuffer:
		return x.Bytes()
	case []byte:
		return x
	}
	return []byte(v.String())
}
