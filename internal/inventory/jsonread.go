package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxJSONDepth is the deepest nesting of objects and arrays a JSON input
// may have.
const maxJSONDepth = 128

// jsonReader reads a JSON document token by token, so that what the
// document costs is the components it yields, not a tree of everything in
// it, and nesting is bounded here rather than by the decoder.
type jsonReader struct {
	dec   *json.Decoder
	src   []byte
	file  string
	depth int
}

func newJSONReader(file string, b []byte) *jsonReader {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	return &jsonReader{dec: json.NewDecoder(bytes.NewReader(b)), src: b, file: file}
}

// line returns the line the decoder has reached.
func (r *jsonReader) line() int { return lineAt(r.src, r.dec.InputOffset()) }

// token returns the next token, turning decoder errors into *Error.
func (r *jsonReader) token() (json.Token, error) {
	t, err := r.dec.Token()
	if err == nil {
		return t, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, &Error{File: r.file, Line: lineAt(r.src, se.Offset), Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, malformed(r.file, lineAt(r.src, int64(len(r.src))), "unexpected end of JSON")
	}
	return nil, &Error{File: r.file, Line: r.line(), Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
}

// wrongType reports that the value at path is not what was wanted.
func (r *jsonReader) wrongType(path, want string, t json.Token) error {
	return malformed(r.file, r.line(), "%s: want %s, found %s", path, want, describe(t))
}

// describe names the kind of JSON value a token starts.
func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a number"
}

// enter counts one more level of nesting.
func (r *jsonReader) enter(n int) error {
	r.depth += n
	if r.depth > maxJSONDepth {
		return tooLarge(r.file, r.line(), "JSON nested deeper than %d", maxJSONDepth)
	}
	return nil
}

// object reads an object (or null), calling fn for each key; fn must read
// the key's value.
func (r *jsonReader) object(path string, fn func(key string) error) error {
	t, err := r.token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return r.wrongType(path, "an object", t)
	}
	if err := r.enter(1); err != nil {
		return err
	}
	for r.dec.More() {
		t, err := r.token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return r.wrongType(path, "a key", t)
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	if _, err := r.token(); err != nil { // '}'
		return err
	}
	r.depth--
	return nil
}

// array reads an array (or null), calling fn for each element; fn must
// read the element.
func (r *jsonReader) array(path string, fn func(i int) error) error {
	t, err := r.token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return r.wrongType(path, "an array", t)
	}
	if err := r.enter(1); err != nil {
		return err
	}
	for i := 0; r.dec.More(); i++ {
		if err := fn(i); err != nil {
			return err
		}
	}
	if _, err := r.token(); err != nil { // ']'
		return err
	}
	r.depth--
	return nil
}

// str reads a string; null reads as "".
func (r *jsonReader) str(path string) (string, error) {
	t, err := r.token()
	if err != nil {
		return "", err
	}
	switch v := t.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	}
	return "", r.wrongType(path, "a string", t)
}

// scalar reads a string or a number as text; null reads as "".
func (r *jsonReader) scalar(path string) (string, error) {
	t, err := r.token()
	if err != nil {
		return "", err
	}
	switch v := t.(type) {
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case nil:
		return "", nil
	}
	return "", r.wrongType(path, "a string or number", t)
}

// boolean reads a boolean; null reads as false.
func (r *jsonReader) boolean(path string) (bool, error) {
	t, err := r.token()
	if err != nil {
		return false, err
	}
	switch v := t.(type) {
	case bool:
		return v, nil
	case nil:
		return false, nil
	}
	return false, r.wrongType(path, "a boolean", t)
}

// skip reads and discards one value of any kind.
func (r *jsonReader) skip() error {
	t, err := r.token()
	if err != nil {
		return err
	}
	if _, ok := t.(json.Delim); !ok {
		return nil
	}
	open := 1
	if err := r.enter(1); err != nil {
		return err
	}
	for open > 0 {
		t, err := r.token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				open++
				if err := r.enter(1); err != nil {
					return err
				}
			} else {
				open--
				r.depth--
			}
		}
	}
	return nil
}

// end checks that nothing follows the document.
func (r *jsonReader) end() error {
	if _, err := r.dec.Token(); err != io.EOF {
		return malformed(r.file, r.line(), "data after the JSON document")
	}
	return nil
}

// field returns path.key, quoting a key that is not a plain word.
func field(path, key string) string {
	plain := key != ""
	for _, c := range key {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	if !plain {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// index returns path[i].
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }
