// Package framing closes the HTTP/1 framing ambiguities Go's server
// tolerates, through which a request can be smuggled past a proxy that
// frames the bytes differently (RFC 9112 sections 2.2, 5.2 and 6).
//
// Guard checks every request's header section on a plaintext connection
// before the server reads it: a line ending in a bare LF, a folded header
// line, Content-Length beside Transfer-Encoding, and Transfer-Encoding on
// HTTP/1.0 are refused with 400 and the connection closed. CloseAmbiguous
// closes the connection after any request framed by Transfer-Encoding or
// sent as HTTP/1.0, so what follows such a request in the same connection
// is never read as a request, under TLS too.
package framing

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
)

// maxHead is how much of a header section the guard holds and checks per
// connection. It is past the node's MaxHeaderBytes (64KiB) plus the 4KiB
// net/http reads beyond it, so a longer section is one the server refuses
// itself (431): the guard hands it on unchecked.
const maxHead = 68<<10 + 1

// refusal replaces a refused request in the stream: the server answers it
// with 400 Bad Request and closes the connection.
const refusal = "GET / HTTP/1.1\r\nHost: moat\r\nrefused for ambiguous framing\r\n\r\n"

// Guard wraps ln so that the requests on each connection are checked as the
// package says. refused, if not nil, is told the connection's remote address
// and the reason of each refusal.
func Guard(ln net.Listener, refused func(remote, reason string)) net.Listener {
	return &listener{Listener: ln, refused: refused}
}

type listener struct {
	net.Listener
	refused func(remote, reason string)
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, refused: l.refused}, nil
}

// conn hands the server the bytes of its connection once each header
// section is whole and checked, and body bytes as they come.
type conn struct {
	net.Conn
	refused func(remote, reason string)
	out     []byte // checked, not yet read by the server
	head    []byte // read from the connection, not yet checked
	buf     []byte
	body    int64 // bytes of the current request's body still to pass
	through bool  // the rest of the connection passes unchecked
	done    bool  // refused: after out, the connection ends
}

// NetConn is the wrapped connection (connlimit finds its own through it).
func (c *conn) NetConn() net.Conn { return c.Conn }

func (c *conn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.done {
			return 0, io.EOF
		}
		if len(c.head) == 0 && (c.through || c.body > 0) {
			if !c.through && int64(len(p)) > c.body {
				p = p[:c.body]
			}
			n, err := c.Conn.Read(p)
			if !c.through {
				c.body -= int64(n)
			}
			return n, err
		}
		if c.step() {
			continue
		}
		if c.buf == nil {
			c.buf = make([]byte, 4096)
		}
		n, err := c.Conn.Read(c.buf)
		c.head = append(c.head, c.buf[:n]...)
		if err != nil {
			// An incomplete request: the server sees what came, and the error.
			c.out, c.head, c.through = c.head, nil, true
			if len(c.out) == 0 {
				return 0, err
			}
		}
	}
}

// step moves what it can from head to out, and reports whether it did:
// the part of a body already read, or a whole, checked header section. A
// refused request moves the refusal instead.
func (c *conn) step() bool {
	if len(c.head) == 0 {
		return false
	}
	if c.body > 0 || c.through {
		k := len(c.head)
		if !c.through && int64(k) > c.body {
			k = int(c.body)
		}
		c.out, c.head = c.head[:k:k], c.head[k:]
		if !c.through {
			c.body -= int64(k)
		}
		return true
	}
	end, reason := headerEnd(c.head)
	switch {
	case reason != "":
	case end < 0 && len(c.head) > maxHead:
		c.through = true
		return true
	case end < 0:
		return false
	default:
		var next int64
		next, c.through, reason = check(c.head[:end])
		if reason == "" {
			c.out, c.head, c.body = c.head[:end:end], c.head[end:], next
			return true
		}
	}
	c.out, c.head, c.done = []byte(refusal), nil, true
	if c.refused != nil {
		c.refused(c.RemoteAddr().String(), reason)
	}
	return true
}

// headerEnd is the length of the header section at the start of b (through
// its empty line), or -1 if b does not hold all of it yet. A line not ended
// by CRLF is refused as soon as it is seen.
func headerEnd(b []byte) (int, string) {
	at := 0
	for {
		i := bytes.IndexByte(b[at:], '\n')
		if i < 0 {
			if j := bytes.IndexByte(b[at:], '\r'); j >= 0 && j < len(b[at:])-1 {
				return -1, "bare CR"
			}
			return -1, ""
		}
		line := b[at : at+i]
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return -1, "bare LF"
		}
		if bytes.IndexByte(line[:len(line)-1], '\r') >= 0 {
			return -1, "bare CR"
		}
		at += i + 1
		if len(line) == 1 {
			if at == 2 {
				return -1, "empty line before the request line"
			}
			return at, ""
		}
	}
}

// check reads a whole header section: the length of the body that follows
// it, whether the rest of the connection passes unchecked (a body framed by
// Transfer-Encoding, which the server reads strictly and after which
// CloseAmbiguous closes), and the reason to refuse it, if any. What the
// server would refuse anyway (a malformed length, an unknown protocol) is
// refused here, so that nothing passes unchecked on the server's say-so.
func check(head []byte) (body int64, through bool, reason string) {
	lines := bytes.Split(head[:len(head)-4], []byte("\r\n"))
	request := lines[0]
	proto := request[bytes.LastIndexByte(request, ' ')+1:]
	var te bool
	var cl [][]byte
	for _, line := range lines[1:] {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return 0, false, "folded header line"
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // the server refuses it
		}
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = true
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = append(cl, bytes.Trim(value, " \t"))
		}
	}
	if te && len(cl) > 0 {
		return 0, false, "Content-Length with Transfer-Encoding"
	}
	if te && !bytes.Equal(proto, []byte("HTTP/1.1")) {
		return 0, false, "Transfer-Encoding on HTTP/1.0 or older"
	}
	if !bytes.Equal(proto, []byte("HTTP/1.1")) && !bytes.Equal(proto, []byte("HTTP/1.0")) {
		if len(proto) > 16 {
			proto = proto[:16]
		}
		return 0, false, "protocol " + strconv.Quote(string(proto))
	}
	if te {
		return 0, true, ""
	}
	if len(cl) == 0 {
		return 0, false, ""
	}
	for _, v := range cl[1:] {
		if !bytes.Equal(v, cl[0]) {
			return 0, false, "differing Content-Length"
		}
	}
	for _, d := range cl[0] {
		if d < '0' || d > '9' {
			return 0, false, "malformed Content-Length"
		}
	}
	n, err := strconv.ParseInt(string(cl[0]), 10, 64)
	if err != nil {
		return 0, false, "malformed Content-Length"
	}
	return n, false, ""
}

// CloseAmbiguous closes the connection after answering a request whose
// framing another parser could read differently: one framed by
// Transfer-Encoding (RFC 9112 section 6.3: with Content-Length too, the
// server must close; alone, closing costs one reconnect) or sent as
// HTTP/1.0, which may not use Transfer-Encoding at all (section 6.1).
func CloseAmbiguous(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || r.ProtoMinor == 0) {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
