// Command hello is Moat's example function: a plain http.Handler, served over
// CGI in a fresh sandbox for every request.
package main

import (
	"net/http/cgi"

	"github.com/moatfn/moat/examples/hello/greet"
)

func main() {
	cgi.Serve(greet.Handler())
}
