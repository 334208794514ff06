// Command reactor is a Go function built as a reactor
// (-buildmode=c-shared) with the SDK: the guest of the snapshot tests. Its
// package state is what a request must never see changed by another.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	randv2 "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moatfn/moat/sdk/fn"
)

var (
	counter  int
	seen     = map[string]int{}
	cache    sync.Map
	list     []string
	initTime = time.Now()
	ticks    = make(chan int)
	initRand = rand.Int63()
)

func init() {
	// A goroutine with state of its own: it counts how often it is asked.
	go func() {
		n := 0
		for {
			n++
			ticks <- n
		}
	}()
	if os.Getenv("FAIL_INIT") != "" {
		panic("init failed on purpose")
	}
	fn.HandleFunc(handle)
	warm()
}

// warm runs the JSON path once at init, so that encoding/json's caches of
// the types it meets are in the snapshot rather than built per request.
func warm() {
	var in struct {
		Name  string    `json:"name"`
		Items []float64 `json:"items"`
	}
	json.Unmarshal([]byte(`{"name":"x","items":[1]}`), &in)
	json.Marshal(map[string]any{"hello": in.Name, "sum": 1.0, "count": 1})
}

func main() { fn.Main() }

func handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "state":
		// Every request must see the initial state, and leave its mark.
		_, cached := cache.Load("k")
		out := map[string]any{
			"counter": counter, "seen": len(seen), "list": len(list),
			"cached": cached, "tick": <-ticks,
		}
		counter++
		seen[r.URL.RawQuery]++
		list = append(list, "x")
		cache.Store("k", true)
		json.NewEncoder(w).Encode(out)
	case "rand":
		m := map[int]bool{}
		for i := range 64 {
			m[i] = true
		}
		var order []int
		for k := range m {
			order = append(order, k)
			if len(order) == 8 {
				break
			}
		}
		json.NewEncoder(w).Encode(map[string]any{
			"v1": rand.Int63(), "v2": randv2.Uint64(), "order": order, "init": initRand,
		})
	case "time":
		json.NewEncoder(w).Encode(map[string]any{
			"now": time.Now().UnixNano(), "since_init_ns": time.Since(initTime).Nanoseconds(),
			"init": initTime.UnixNano(),
		})
	case "echo":
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
			"header": r.Header.Get("X-Test"), "body": string(body),
			"env": os.Getenv("GREETING"), "remote_user": os.Getenv("REMOTE_USER"),
		})
	case "json":
		var in struct {
			Name  string    `json:"name"`
			Items []float64 `json:"items"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := 0.0
		for _, v := range in.Items {
			sum += v
		}
		json.NewEncoder(w).Encode(map[string]any{"hello": in.Name, "sum": sum, "count": len(in.Items)})
	case "kv":
		// Put then get in the bucket "b": both need the grant.
		out := map[string]any{}
		if _, err := fn.KV("b").Put("k", []byte(r.URL.RawQuery)); err != nil {
			out["put"] = err.Error()
		}
		v, _, err := fn.KV("b").Get("k")
		if err != nil {
			out["get"] = err.Error()
		}
		out["value"] = string(v)
		json.NewEncoder(w).Encode(out)
	case "secret":
		v, err := fn.Secret("TOKEN")
		if err != nil {
			json.NewEncoder(w).Encode(map[string]any{"err": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"len": len(v)})
	case "sleep":
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintln(w, `"slept"`)
	case "spin":
		for {
		}
	case "alloc":
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	case "panic":
		fmt.Fprintln(os.Stderr, "about to panic")
		panic("handler panicked")
	case "exit":
		os.Exit(3)
	case "flood":
		os.Stdout.WriteString("Content-Type: text/plain\n\n")
		chunk := strings.Repeat("x", 1<<16)
		for {
			io.WriteString(w, chunk)
			os.Stdout.WriteString(chunk)
		}
	case "spewexit":
		// Writes past any cap straight to stdout and returns as if all
		// were well once a write fails.
		os.Stdout.WriteString("Content-Type: text/plain\n\n")
		chunk := strings.Repeat("x", 1<<16)
		for {
			if _, err := os.Stdout.WriteString(chunk); err != nil {
				return
			}
		}
	case "spewlog":
		line := strings.Repeat("y", 1000) + "\n"
		for range 300 {
			os.Stderr.WriteString(line)
		}
		fmt.Fprintln(w, `"logged a lot"`)
	case "raw":
		io.Copy(os.Stdout, r.Body)
	case "request":
		caller, err := fn.Caller()
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		json.NewEncoder(w).Encode(map[string]any{
			"path": r.URL.Path, "raw_path": r.URL.RawPath, "query": r.URL.RawQuery,
			"request_uri": os.Getenv("REQUEST_URI"), "remote_user": os.Getenv("REMOTE_USER"),
			"caller": caller, "caller_error": errText,
		})
	default:
		http.NotFound(w, r)
	}
}
