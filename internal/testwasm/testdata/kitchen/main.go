// Command kitchen is a test guest: one net/http/cgi handler whose path picks
// a behaviour, well-behaved or hostile, so one build serves every sandbox test.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"sort"
	"strings"
	"time"
)

// counter lives in linear memory: a fresh instance per request must always
// see it at zero.
var counter int

func main() {
	if err := cgi.Serve(http.HandlerFunc(handle)); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

func handle(w http.ResponseWriter, r *http.Request) {
	counter++
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "", "hello":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		fmt.Fprintf(w, "hello, %s\n", name)
	case "echo":
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Header().Set("X-Method", r.Method)
		io.Copy(w, r.Body)
	case "env":
		env := os.Environ()
		sort.Strings(env)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, strings.Join(env, "\n"))
	case "counter":
		fmt.Fprintf(w, "%d", counter)
	case "status":
		w.Header().Set("X-Custom", "yes")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, "short and stout")
	case "log":
		fmt.Fprintln(os.Stderr, "first line")
		fmt.Fprintln(os.Stderr, "second line")
		fmt.Fprint(w, "logged")
	case "exit3":
		fmt.Fprintln(os.Stderr, "about to exit 3")
		os.Exit(3)
	case "panic":
		panic("guest panic: secret stack detail")
	case "loop":
		for {
			counter++
		}
	case "sleep":
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprint(w, "slept")
	case "alloc":
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 1<<20))
			keep[len(keep)-1][0] = 1
		}
	case "spew":
		buf := make([]byte, 1<<16)
		for {
			w.Write(buf)
		}
	case "spewerr":
		line := strings.Repeat("x", 1000) + "\n"
		for {
			os.Stderr.WriteString(line)
		}
	default:
		http.NotFound(w, r)
	}
}
