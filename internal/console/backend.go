package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// apiError is a control API answer other than success: the console shows
// its title and detail, as the CLI does.
type apiError struct {
	Status int
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *apiError) Error() string {
	if e.Detail != "" {
		return e.Title + ": " + e.Detail
	}
	return e.Title
}

// recorder keeps what the API answered, up to a bound.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.body.Len()+len(p) > maxAnswer {
		return 0, fmt.Errorf("the answer is over %d bytes", maxAnswer)
	}
	return rec.body.Write(p)
}

// maxAnswer bounds what one API answer may hold for a page.
const maxAnswer = 32 << 20

// apiRequest is a control API request for the page's caller: it carries
// the browser's address and user agent, marked as the console's, so that
// the audit record says who, from where and through which door.
func apiRequest(r *http.Request, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("User-Agent", consoleAgent(r))
	return req, nil
}

// problemOf is the API's answer other than success.
func problemOf(status int, body []byte) *apiError {
	e := &apiError{Status: status}
	if json.Unmarshal(body, e) != nil || e.Title == "" {
		e.Title = http.StatusText(status)
	}
	return e
}

// call serves method path (with a JSON body, if not nil) through the
// control API for the page's caller, and decodes the answer into out.
func (c *Console) call(r *http.Request, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := apiRequest(r, method, path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeAs(rec, req, from(r).id)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		return problemOf(rec.status, rec.body.Bytes())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// stream serves GET path through the control API for the page's caller
// and hands each line of a successful answer to line as it comes (a log
// tail); an answer other than success is returned as an *apiError.
func (c *Console) stream(r *http.Request, path string, line func([]byte) error) error {
	req, err := apiRequest(r, http.MethodGet, path, http.NoBody)
	if err != nil {
		return err
	}
	var errBody []byte
	st := &streamer{header: http.Header{}}
	st.line = func(b []byte) error {
		if st.status >= 300 {
			errBody = append(errBody, b...)
			return nil
		}
		return line(b)
	}
	c.cfg.API.ServeAs(st, req, from(r).id)
	if st.status >= 300 {
		return problemOf(st.status, append(errBody, st.buf...))
	}
	return nil
}

// consoleAgent is how the audit trail names a console request's client.
func consoleAgent(r *http.Request) string {
	return "moat-console (" + truncate(strings.ToValidUTF8(r.UserAgent(), "?"), 150) + ")"
}

// streamer hands the API's streamed answer (a log tail) on line by line.
type streamer struct {
	header http.Header
	status int
	line   func([]byte) error
	buf    []byte
}

func (s *streamer) Header() http.Header { return s.header }
func (s *streamer) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

func (s *streamer) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		if err := s.line(s.buf[:i]); err != nil {
			return 0, err
		}
		s.buf = s.buf[i+1:]
	}
	if len(s.buf) > 1<<20 {
		return 0, fmt.Errorf("a line over 1 MiB")
	}
	return len(p), nil
}

func (s *streamer) Flush() {}
