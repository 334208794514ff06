package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"

	"github.com/moatfn/moat/sdk/fn"
)

// installNatives defines what the prelude builds the web APIs on: the
// parts that need Go (bytes, randomness, URL parsing) and the host calls.
func installNatives(vm *goja.Runtime) {
	n := vm.NewObject()
	set := func(name string, f func(goja.FunctionCall) goja.Value) { n.Set(name, f) }
	throw := func(format string, args ...any) { panic(vm.NewTypeError(fmt.Sprintf(format, args...))) }
	bytesArg := func(v goja.Value) []byte {
		switch x := v.Export().(type) {
		case goja.ArrayBuffer:
			return x.Bytes()
		case []byte:
			return x
		case string:
			return []byte(x)
		}
		if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
			return nil
		}
		return []byte(v.String())
	}
	buffer := func(b []byte) goja.Value { return vm.ToValue(vm.NewArrayBuffer(b)) }
	set("encode", func(c goja.FunctionCall) goja.Value { return buffer([]byte(c.Argument(0).String())) })
	set("decode", func(c goja.FunctionCall) goja.Value {
		b := bytesArg(c.Argument(0))
		if c.Argument(1).ToBoolean() && !utf8.Valid(b) {
			throw("TextDecoder: the data is not valid UTF-8")
		}
		return vm.ToValue(strings.ToValidUTF8(string(b), "\uFFFD"))
	})
	set("random", func(c goja.FunctionCall) goja.Value {
		n := c.Argument(0).ToInteger()
		if n < 0 || n > 65536 {
			panic(vm.NewGoError(errors.New("QuotaExceededError: getRandomValues takes at most 65536 bytes")))
		}
		b := make([]byte, n)
		rand.Read(b)
		return buffer(b)
	})
	set("uuid", func(goja.FunctionCall) goja.Value { return vm.ToValue(uuid4()) })
	set("atob", func(c goja.FunctionCall) goja.Value {
		s := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r' {
				return -1
			}
			return r
		}, c.Argument(0).String())
		if len(s)%4 != 0 {
			s += strings.Repeat("=", 4-len(s)%4)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			panic(vm.NewGoError(errors.New("InvalidCharacterError: atob: not base64")))
		}
		runes := make([]rune, len(b))
		for i, c := range b {
			runes[i] = rune(c)
		}
		return vm.ToValue(string(runes))
	})
	set("btoa", func(c goja.FunctionCall) goja.Value {
		s := c.Argument(0).String()
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				panic(vm.NewGoError(errors.New("InvalidCharacterError: btoa: a character outside Latin-1")))
			}
			b = append(b, byte(r))
		}
		return vm.ToValue(base64.StdEncoding.EncodeToString(b))
	})
	set("log", func(c goja.FunctionCall) goja.Value {
		fmt.Fprintln(os.Stderr, c.Argument(0).String())
		return goja.Undefined()
	})
	set("parseURL", func(c goja.FunctionCall) goja.Value {
		raw := c.Argument(0).String()
		var u *url.URL
		var err error
		if b := c.Argument(1); !goja.IsUndefined(b) && !goja.IsNull(b) {
			var base *url.URL
			if base, err = url.Parse(b.String()); err == nil && base.IsAbs() {
				u, err = base.Parse(raw)
			} else if err == nil {
				err = errors.New("the base is not an absolute URL")
			}
		} else {
			u, err = url.Parse(raw)
			if err == nil && !u.IsAbs() {
				err = errors.New("not an absolute URL")
			}
		}
		if err != nil {
			throw("Invalid URL %q: %v", raw, err)
		}
		// [protocol, username, password, hostname, port, pathname, search, hash]
		pw, _ := u.User.Password()
		path := u.EscapedPath()
		if path == "" && (u.Scheme == "http" || u.Scheme == "https") {
			path = "/"
		}
		search, hash := "", ""
		if u.RawQuery != "" || u.ForceQuery {
			search = "?" + u.RawQuery
		}
		if u.Fragment != "" {
			hash = "#" + u.EscapedFragment()
		}
		return vm.NewArray(u.Scheme+":", u.User.Username(), pw, u.Hostname(), u.Port(), path, search, hash)
	})
	// Headers and queries run for every request: checked and split in Go,
	// where the engine would take tens of microseconds a header.
	set("headerName", func(c goja.FunctionCall) goja.Value {
		n, ok := headerName(c.Argument(0).String())
		if !ok {
			throw("invalid header name: %q", n)
		}
		return vm.ToValue(n)
	})
	set("headerValue", func(c goja.FunctionCall) goja.Value {
		v := strings.Trim(c.Argument(0).String(), " \t\n\r")
		if strings.ContainsAny(v, "\x00\n\r") {
			throw("invalid header value")
		}
		return vm.ToValue(v)
	})
	set("parseQuery", func(c goja.FunctionCall) goja.Value {
		pairs := parseQuery(c.Argument(0).String())
		out := make([]any, len(pairs))
		for i, p := range pairs {
			out[i] = vm.NewArray(p[0], p[1])
		}
		return vm.NewArray(out...)
	})
	// multipart splits a multipart/form-data body into its parts:
	// [name, filename or null, content type, bytes].
	set("multipart", func(c goja.FunctionCall) goja.Value {
		_, params, err := mime.ParseMediaType(c.Argument(1).String())
		if err != nil || params["boundary"] == "" {
			throw("formData: a multipart/form-data body needs a boundary")
		}
		mr := multipart.NewReader(bytes.NewReader(bytesArg(c.Argument(0))), params["boundary"])
		var out []any
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				throw("formData: %v", err)
			}
			if len(out) >= maxFormParts {
				throw("formData: more than %d parts", maxFormParts)
			}
			b, err := io.ReadAll(p)
			if err != nil {
				throw("formData: %v", err)
			}
			var filename goja.Value = goja.Null()
			if _, dp, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err == nil {
				if f, ok := dp["filename"]; ok {
					filename = vm.ToValue(f)
				}
			}
			out = append(out, vm.NewArray(p.FormName(), filename, p.Header.Get("Content-Type"), vm.NewArrayBuffer(b)))
		}
		return vm.NewArray(out...)
	})
	// Capabilities: the SDK's host calls, checked by the node against the
	// manifest's grants. Each answers {ok, value} or {error, code}.
	result := func(v any, err error) goja.Value {
		o := vm.NewObject()
		if err != nil {
			o.Set("error", err.Error())
			var fe *fn.Error
			if errors.As(err, &fe) {
				o.Set("code", fe.Code.String())
			}
			return o
		}
		o.Set("ok", true)
		o.Set("value", v)
		return o
	}
	set("kvGet", func(c goja.FunctionCall) goja.Value {
		v, rev, err := fn.KV(c.Argument(0).String()).Get(c.Argument(1).String())
		if err != nil {
			return result(nil, err)
		}
		return result(map[string]any{"value": vm.NewArrayBuffer(v), "revision": rev}, nil)
	})
	set("kvPut", func(c goja.FunctionCall) goja.Value {
		rev, err := fn.KV(c.Argument(0).String()).Put(c.Argument(1).String(), bytesArg(c.Argument(2)))
		return result(rev, err)
	})
	set("kvDelete", func(c goja.FunctionCall) goja.Value {
		return result(nil, fn.KV(c.Argument(0).String()).Delete(c.Argument(1).String()))
	})
	set("kvKeys", func(c goja.FunctionCall) goja.Value {
		keys, err := fn.KV(c.Argument(0).String()).Keys(c.Argument(1).String())
		return result(keys, err)
	})
	// Object buckets, whole objects at a time: a JavaScript function holds
	// what it reads or writes in memory, within its memory limit.
	objInfo := func(i fn.ObjectInfo) map[string]any {
		return map[string]any{"name": i.Name, "size": i.Size, "digest": i.Digest, "contentType": i.ContentType, "modified": i.Modified.UnixMilli()}
	}
	set("objGet", func(c goja.FunctionCall) goja.Value {
		data, info, err := fn.Objects(c.Argument(0).String()).Get(c.Argument(1).String())
		if err != nil {
			return result(nil, err)
		}
		o := objInfo(info)
		o["value"] = vm.NewArrayBuffer(data)
		return result(o, nil)
	})
	set("objHead", func(c goja.FunctionCall) goja.Value {
		info, err := fn.Objects(c.Argument(0).String()).Info(c.Argument(1).String())
		if err != nil {
			return result(nil, err)
		}
		return result(objInfo(info), nil)
	})
	set("objPut", func(c goja.FunctionCall) goja.Value {
		info, err := fn.Objects(c.Argument(0).String()).Put(c.Argument(1).String(), c.Argument(2).String(), bytes.NewReader(bytesArg(c.Argument(3))))
		if err != nil {
			return result(nil, err)
		}
		return result(objInfo(info), nil)
	})
	set("objDelete", func(c goja.FunctionCall) goja.Value {
		return result(nil, fn.Objects(c.Argument(0).String()).Delete(c.Argument(1).String()))
	})
	set("objList", func(c goja.FunctionCall) goja.Value {
		infos, err := fn.Objects(c.Argument(0).String()).List(c.Argument(1).String())
		if err != nil {
			return result(nil, err)
		}
		out := make([]any, len(infos))
		for i, info := range infos {
			out[i] = objInfo(info)
		}
		return result(out, nil)
	})
	set("secret", func(c goja.FunctionCall) goja.Value {
		v, err := fn.Secret(c.Argument(0).String())
		return result(v, err)
	})
	// An HTTP exchange through the host: egress (fetch) or a call to
	// another function (env.call). The answer is {status, headers, body}.
	answer := func(resp *http.Response, err error) goja.Value {
		if err != nil {
			return result(nil, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return result(nil, err)
		}
		var pairs []any
		for k, vs := range resp.Header {
			for _, v := range vs {
				pairs = append(pairs, vm.NewArray(strings.ToLower(k), v))
			}
		}
		return result(map[string]any{"status": resp.StatusCode, "headers": vm.NewArray(pairs...), "body": vm.NewArrayBuffer(b)}, nil)
	}
	headerArg := func(v goja.Value) http.Header {
		h := http.Header{}
		pairs, _ := v.Export().([]any)
		for _, p := range pairs {
			if kv, ok := p.([]any); ok && len(kv) == 2 {
				h.Add(fmt.Sprint(kv[0]), fmt.Sprint(kv[1]))
			}
		}
		return h
	}
	set("httpDo", func(c goja.FunctionCall) goja.Value {
		body := bytesArg(c.Argument(3))
		req, err := http.NewRequest(c.Argument(0).String(), c.Argument(1).String(), bytes.NewReader(body))
		if err != nil {
			throw("fetch: %v", err)
		}
		req.Header = headerArg(c.Argument(2))
		return answer(fn.HTTPClient().Do(req))
	})
	set("invoke", func(c goja.FunctionCall) goja.Value {
		return answer(fn.Call(c.Argument(0).String(), c.Argument(1).String(), c.Argument(2).String(), bytesArg(c.Argument(4)), headerArg(c.Argument(3))))
	})
	set("publish", func(c goja.FunctionCall) goja.Value {
		id, err := fn.Publish(c.Argument(0).String(), c.Argument(1).String(), c.Argument(2).String(), bytesArg(c.Argument(3)))
		return result(id, err)
	})
	vm.Set("__moat_native", n)
}

// uuid4 is a random (version 4) UUID.
func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// maxFormParts bounds the parts of a multipart body (the manifest's body
// limit bounds its bytes).
const maxFormParts = 1000

// tchar marks the bytes of a header name (a token, RFC 9110), lowercase.
var tchar = func() (t [128]bool) {
	for _, c := range "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz" {
		t[c] = true
	}
	return t
}()

// headerName lowercases n and reports whether it is a token.
func headerName(n string) (string, bool) {
	n = strings.ToLower(n)
	if n == "" {
		return n, false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c >= 128 || !tchar[c] {
			return n, false
		}
	}
	return n, true
}

// parseQuery splits a query string (with or without its "?") into its
// pairs as URLSearchParams does (WHATWG URL, application/x-www-form-
// urlencoded parsing): "+" is a space, a valid %XX a byte, an invalid one
// kept as it is (never an error: a malformed query in a request must not
// make new URL(request.url) throw), bytes that are not UTF-8 replaced
// with U+FFFD, the empty parts skipped, in order.
func parseQuery(q string) [][2]string {
	q = strings.TrimPrefix(q, "?")
	var pairs [][2]string
	for part := range strings.SplitSeq(q, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		pairs = append(pairs, [2]string{formDecode(k), formDecode(v)})
	}
	return pairs
}

// formDecode percent-decodes s leniently, "+" as a space.
func formDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
