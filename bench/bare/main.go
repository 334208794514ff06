// Command bare is the benchmarks' baseline: a plain Go net/http server doing
// natively what the example functions do in Moat's sandbox.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/moatfn/moat/examples/hello/greet"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	flag.Parse()
	mux := http.NewServeMux()
	mux.Handle("/hello", greet.Handler())
	mux.HandleFunc("/minimal", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "hello\n")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "listening at http://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
