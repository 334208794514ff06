// Command kitchen is a test guest: one net/http/cgi handler whose path picks
// a behaviour, well-behaved or hostile, so one build serves every sandbox test.
package main

import (
	"encoding/json"
	"fmt"
	"html"
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
	if r.URL.Path == "/request" || strings.HasPrefix(r.URL.Path, "/request/") {
		// What the function was handed, for the tests of the request's
		// form: the CGI variables and what net/http/cgi made of them.
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"path": r.URL.Path, "raw_path": r.URL.RawPath, "query": r.URL.RawQuery,
			"request_uri": os.Getenv("REQUEST_URI"), "path_info": os.Getenv("PATH_INFO"),
			"query_string": os.Getenv("QUERY_STRING"), "remote_user": os.Getenv("REMOTE_USER"), "host": r.Host,
		})
		return
	}
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
	case "spewexit":
		// Writes past any cap straight to stdout, stops on the first
		// failed write and exits 0 as if all were well.
		os.Stdout.WriteString("Content-Type: text/plain\n\n")
		buf := make([]byte, 1<<16)
		for {
			if _, err := os.Stdout.Write(buf); err != nil {
				os.Exit(0)
			}
		}
	case "spewlog":
		// Logs past the caps, then answers normally.
		line := strings.Repeat("y", 1000) + "\n"
		for range 300 {
			os.Stderr.WriteString(line)
		}
		fmt.Fprint(w, "logged a lot")
	case "attack":
		// A page on the functions' origin that goes for the console named
		// in ?console=: it plants a cookie of the console's name, reads
		// what cookies it can, and posts changes to the console with the
		// browser's credentials. The console's tests load it in a browser.
		console := r.URL.Query().Get("console")
		w.Header().Add("Set-Cookie", "moat_console=planted; Path=/")
		w.Header().Add("Set-Cookie", "__Host-moat_console=planted; Path=/; Secure")
		w.Header().Add("Set-Cookie", "kitchen=1; Path=/")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		js, _ := json.Marshal(console)
		fmt.Fprintf(w, `<!doctype html><title>attack</title>
<p id="server-cookie">%s</p><p id="cookie">pending</p><p id="post">pending</p><p id="read">pending</p>
<form id="forged" method="post" action="%s/functions/page/disable"><input name="csrf" value="guess"><input name="reason" value="forged"><button id="go" type="submit">go</button></form>
<script>
const console_ = %s;
document.getElementById('cookie').textContent = 'cookie:' + document.cookie;
fetch(console_ + '/functions/page/disable', {method: 'POST', credentials: 'include', mode: 'no-cors',
  headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=guess&reason=forged'})
  .then(r => { document.getElementById('post').textContent = 'sent:' + r.type; }, e => { document.getElementById('post').textContent = 'error'; });
fetch(console_ + '/', {credentials: 'include'}).then(r => r.text())
  .then(t => { document.getElementById('read').textContent = 'read:' + t; }, e => { document.getElementById('read').textContent = 'blocked'; });
</script>`, html.EscapeString("cookie header: "+os.Getenv("HTTP_COOKIE")), html.EscapeString(console), js)
	case "raw":
		// Writes the request body as its whole CGI response: the tests'
		// way to send any response a hostile guest could.
		io.Copy(os.Stdout, r.Body)
		os.Exit(0)
	default:
		http.NotFound(w, r)
	}
}
