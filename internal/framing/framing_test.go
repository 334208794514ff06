package framing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is a real net/http server on 127.0.0.1 behind Guard and
// CloseAmbiguous, answering each request with its method, path and body.
type server struct {
	addr    string
	mu      sync.Mutex
	refused []string
}

var shared *server

func TestMain(m *testing.M) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	shared = &server{addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: CloseAmbiguous(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.Path, b)
		})),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go srv.Serve(Guard(ln, func(remote, reason string) {
		shared.mu.Lock()
		shared.refused = append(shared.refused, reason)
		shared.mu.Unlock()
	}))
	os.Exit(m.Run())
}

// exchange writes stream on a fresh connection and reads the responses:
// each as "STATUS BODY", and whether the server closed the connection (as
// against going quiet).
func exchange(t testing.TB, stream string) (answers []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", shared.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.WriteString(c, stream)
	c.SetReadDeadline(time.Now().Add(time.Second))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return answers, !errors.As(err, &ne) || !ne.Timeout()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b))))
	}
}

func TestFraming(t *testing.T) {
	const host = "Host: h\r\n"
	for _, tt := range []struct {
		name, stream string
		want         []string // answers, in order; the connection must then be closed
		open         bool     // the connection stays open after them
	}{
		{"keep-alive still works",
			"POST /a HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n" + host + "\r\n",
			[]string{`200 POST /a "abc"`, `200 GET /b ""`}, true},
		{"a body read in pieces and a large body",
			"POST /a HTTP/1.1\r\n" + host + "Content-Length: 20000\r\n\r\n" + strings.Repeat("x", 20000) + "GET /b HTTP/1.1\r\n" + host + "\r\n",
			[]string{`200 POST /a "` + strings.Repeat("x", 20000) + `"`, `200 GET /b ""`}, true},
		{"CL and TE: refused, the hidden request never served",
			"POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"CL and TE in any case",
			"POST /a HTTP/1.1\r\n" + host + "content-length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"chunked alone: answered, then closed",
			"POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
			[]string{`200 POST /a "abc"`}, false},
		{"TE on HTTP/1.0 with keep-alive",
			"POST /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.0\r\n\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"HTTP/1.0 keep-alive: answered, then closed",
			"POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nzGET /smuggled HTTP/1.0\r\n\r\n",
			[]string{`200 POST /a "z"`}, false},
		{"bare LF ends no line",
			"GET /a HTTP/1.1\n" + host + "\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"bare LF hiding a header",
			"GET /a HTTP/1.1\r\n" + host + "X: y\nContent-Length: 25\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"bare LF in the second request",
			"GET /a HTTP/1.1\r\n" + host + "\r\nGET /b HTTP/1.1\n" + host + "\n",
			[]string{`200 GET /a ""`, "400 400 Bad Request"}, false},
		{"bare CR",
			"GET /a HTTP/1.1\r\n" + host + "X: y\rContent-Length: 2\r\n\r\nab",
			[]string{"400 400 Bad Request"}, false},
		{"folded Transfer-Encoding",
			"POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"folded line",
			"GET /a HTTP/1.1\r\n" + host + "X: y\r\n\tz\r\n\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"space before the colon of Transfer-Encoding",
			"POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
			[]string{"400 400 Bad Request: invalid header name"}, false},
		{"differing Content-Length",
			"POST /a HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
			[]string{"400 400 Bad Request"}, false},
		{"signed Content-Length",
			"POST /a HTTP/1.1\r\n" + host + "Content-Length: +2\r\n\r\nab",
			[]string{"400 400 Bad Request"}, false},
		{"list Content-Length",
			"POST /a HTTP/1.1\r\n" + host + "Content-Length: 2, 2\r\n\r\nab",
			[]string{"400 400 Bad Request"}, false},
		{"empty line before the request line",
			"\r\nPOST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"HTTP/2.0 on a plaintext connection",
			"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			[]string{"400 400 Bad Request"}, false},
		{"a header section under the guard's hold, over the server's bound",
			"GET /a HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", 20<<10) + "\r\n\r\n",
			[]string{"431 431 Request Header Fields Too Large"}, false},
		{"a header section past the guard's hold: the server refuses it",
			"GET /a HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", 100<<10) + "\nContent-Length: 5\r\n\r\n",
			[]string{"431 431 Request Header Fields Too Large"}, false},
		{"TE other than chunked",
			"POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
			[]string{"501 Unsupported transfer encoding"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, closed := exchange(t, tt.stream)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("answers %.300q, want %q", got, tt.want)
			}
			if closed == tt.open {
				t.Errorf("connection closed %v, want %v", closed, !tt.open)
			}
		})
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if len(shared.refused) == 0 || !strings.Contains(strings.Join(shared.refused, ","), "Content-Length with Transfer-Encoding") {
		t.Errorf("refusals reported: %q", shared.refused)
	}
}

// FuzzGuard: whatever bytes arrive, what the server reads is a prefix of
// them, possibly followed by the refusal; and a stream cut anywhere reads
// the same as the stream whole.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"\r\n\r\n", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16) {
		whole := readAll(t, stream, len(stream)+1)
		pieces := readAll(t, stream, int(cut)%7+1)
		if !bytes.Equal(whole, pieces) {
			t.Fatalf("%q read whole as %q, in pieces as %q", stream, whole, pieces)
		}
		passed := bytes.TrimSuffix(whole, []byte(refusal))
		if !bytes.HasPrefix(stream, passed) {
			t.Fatalf("%q passed as %q", stream, whole)
		}
	})
}

// readAll reads through a guarded conn that receives stream in pieces of
// size n.
func readAll(t *testing.T, stream []byte, n int) []byte {
	c := &conn{Conn: &pieces{b: stream, n: n}}
	var out []byte
	buf := make([]byte, 1000)
	for range 1 << 20 {
		k, err := c.Read(buf)
		out = append(out, buf[:k]...)
		if err != nil {
			return out
		}
	}
	t.Fatal("the guard never ends the stream")
	return nil
}

// pieces is a net.Conn that delivers b n bytes at a time, then io.EOF.
type pieces struct {
	net.Conn
	b []byte
	n int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	k := copy(b[:min(len(b), p.n)], p.b)
	p.b = p.b[k:]
	return k, nil
}

func (p *pieces) RemoteAddr() net.Addr { return &net.TCPAddr{} }
