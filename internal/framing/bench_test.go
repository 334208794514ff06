package framing

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkGuard: a keep-alive POST with a small body and a GET, through
// net/http on 127.0.0.1, bare (the baseline) and behind Guard.
func BenchmarkGuard(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "bare"
		if guarded {
			name = "guarded"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			})}
			if guarded {
				go srv.Serve(Guard(ln, nil))
			} else {
				go srv.Serve(ln)
			}
			defer srv.Close()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			url := "http://" + ln.Addr().String() + "/fn/x"
			body := strings.Repeat("x", 200)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				resp, err := c.Post(url, "text/plain", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
