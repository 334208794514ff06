package fn_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"strconv"
	"strings"
	"time"

	"github.com/moatfn/moat/sdk/fn"
)

// A whole function: an http.Handler served over CGI that counts its visits
// in a KV bucket. Its moat.yaml grants permissions: {kv: {counters: read-write}}.
func Example() {
	counters := fn.KV("counters")
	log := fn.Logger()
	cgi.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 1
		v, _, err := counters.Get("visits")
		switch {
		case errors.Is(err, fn.ErrNotFound):
		case err != nil:
			log.Error("count failed", slog.Any("err", err))
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		default:
			n, _ = strconv.Atoi(string(v))
			n++
		}
		if _, err := counters.Put("visits", []byte(strconv.Itoa(n))); err != nil {
			log.Error("count failed", slog.Any("err", err))
		}
		w.Write([]byte("visit " + strconv.Itoa(n) + "\n"))
	}))
}

// Cache a value for ten minutes. The manifest grants
// permissions: {kv: {sessions: read-write}}.
func ExampleKV() {
	sessions := fn.KV("sessions")
	if _, err := sessions.PutTTL("s/42", []byte(`{"user":"ada"}`), 10*time.Minute); err != nil {
		panic(err)
	}
	v, rev, err := sessions.Get("s/42")
	switch {
	case errors.Is(err, fn.ErrNotFound):
		// expired, or never stored
	case errors.Is(err, fn.ErrDenied):
		// the manifest does not grant the bucket
	case err != nil:
		panic(err)
	default:
		_, _ = v, rev
	}
	keys, err := sessions.Keys("s/")
	if err != nil {
		panic(err)
	}
	_ = keys
}

// Take a lock that frees itself after 30 seconds unless released.
func ExampleBucket_Create() {
	locks := fn.KV("locks")
	_, err := locks.Create("invoice/7", []byte("worker-a"), 30*time.Second)
	if errors.Is(err, fn.ErrConflict) {
		return // someone else holds it
	}
	if err != nil {
		panic(err)
	}
	defer locks.Delete("invoice/7")
	// ... work on invoice 7 ...
}

// Increment a counter safely against concurrent invocations: retry the
// compare-and-set until no other write came first.
func ExampleBucket_Update() {
	stock := fn.KV("inventory")
	for {
		v, rev, err := stock.Get("widget")
		if err != nil {
			panic(err)
		}
		n, _ := strconv.Atoi(string(v))
		_, err = stock.Update("widget", []byte(strconv.Itoa(n-1)), rev)
		if errors.Is(err, fn.ErrConflict) {
			continue
		}
		if err != nil {
			panic(err)
		}
		return
	}
}

// Read an API key the manifest names: permissions: {secrets: [MAILER_KEY]}.
func ExampleSecret() {
	key, err := fn.Secret("MAILER_KEY")
	if err != nil {
		panic(err)
	}
	req, _ := http.NewRequest("POST", "https://mail.example.net/v3/send", strings.NewReader(`{"to":"ada@example.org"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	_ = req
}

// Call an outside API under an egress prefix the manifest grants:
// permissions: {egress: ["https://api.example.net/v1/"]}.
func ExampleHTTPClient() {
	client := fn.HTTPClient()
	resp, err := client.Get("https://api.example.net/v1/rates?base=EUR")
	if errors.Is(err, fn.ErrDenied) {
		panic("the URL is under no egress prefix of the manifest")
	}
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var rates map[string]float64
	if err := json.NewDecoder(resp.Body).Decode(&rates); err != nil {
		panic(err)
	}
}

// Pass a request on to another function the manifest names:
// permissions: {invoke: [render-pdf]}.
func ExampleInvoke() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), "POST", "/invoice?format=a4", r.Body)
		out.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		resp, err := fn.Invoke("render-pdf", out)
		if err != nil {
			http.Error(w, "render failed", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}
	cgi.Serve(http.HandlerFunc(handler))
}

// Call another function with a body built in memory.
func ExampleCall() {
	resp, err := fn.Call("pricing", "POST", "/quote?currency=EUR",
		[]byte(`{"sku":"w-1","qty":3}`), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		panic("pricing answered " + resp.Status)
	}
}

// Write structured records to the function's log; the host stamps time and
// invocation. Needs no grant.
func ExampleLogger() {
	log := fn.Logger().With("component", "checkout")
	log.Info("order placed", slog.String("order_id", "o-17"), slog.Int("items", 3))
	log.WithGroup("payment").Warn("payment retried", slog.Int("attempt", 2))
	// The host receives the second record as level warn, message
	// "payment retried", attrs component=checkout, payment.attempt=2.
}
