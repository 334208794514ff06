// Command bare is the benchmarks' baseline: a plain Go net/http server doing
// natively what the example functions do in Moat's sandbox.
package main

import (
	"encoding/json"
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
	// The JSON handler of the reactor guest (internal/testwasm/testdata/reactor)
	// and of bench/workerd/worker.js: {"name":..., "items":[numbers]} in,
	// {"count":..., "hello":..., "sum":...} out; 400 for bad JSON.
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
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
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "listening at http://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
