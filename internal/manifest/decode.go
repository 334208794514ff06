package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// handler decodes the value of one field into its place in a Manifest.
// field is the dotted path used in errors.
type handler func(v *yaml.Node, field string) error

// decoder walks a manifest's YAML nodes, keeping the line of each field.
type decoder struct {
	lines map[string]int // dotted field path -> line of its value
}

// parse is Parse, also returning the line of each field present, for Load.
func parse(src []byte) (*Manifest, map[string]int, error) {
	if len(src) > maxBytes {
		return nil, nil, &Error{Err: fmt.Errorf("manifest is %d bytes, more than the limit of %d", len(src), maxBytes)}
	}
	root, err := document(src)
	if err != nil {
		return nil, nil, err
	}
	d := &decoder{lines: make(map[string]int)}
	m := defaults()
	if err := d.manifest(root, &m); err != nil {
		return nil, nil, err
	}
	return &m, d.lines, nil
}

var errEmpty = errors.New("empty manifest")

// document returns the root mapping of the only document in src.
func document(src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Err: errEmpty}
		}
		return nil, syntaxError(src, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &Error{Line: next.Line, Err: errors.New("a second document starts here (a manifest is one document)")}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(src, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{Err: errEmpty}
	}
	root := doc.Content[0]
	if err := refuseAliasesAndTags(root); err != nil {
		return nil, err
	}
	if isNull(root) {
		return nil, &Error{Err: errEmpty}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Line: root.Line, Err: fmt.Errorf("want a mapping of fields, found %s", kindName(root))}
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`(?s)^yaml: line ([0-9]+): (.*)$`)

// parserProblems are the problems the YAML parser (as opposed to its
// scanner and reader) reports. It numbers their lines from 0.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
	"found undefined tag handle",
}

// syntaxError turns an error from the YAML parser into an *Error, doing
// its best to name the right line: the parser numbers some lines from 0
// and leaves out line 1 and the reader's errors (bad bytes) have none.
func syntaxError(src []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case slices.Contains(parserProblems, msg):
		line++
	case line == 0:
		if off := badByte(src); off >= 0 {
			line = 1 + bytes.Count(src[:off], []byte("\n"))
		} else {
			line = 1
		}
	}
	// An error at the end of input may name the line after the last.
	last := bytes.Count(src, []byte("\n"))
	if len(src) > 0 && src[len(src)-1] != '\n' {
		last++
	}
	line = max(min(line, last), 1)
	if t := tabIndented(src); t > 0 && t <= line+1 {
		line = t
		msg += " (indent with spaces, not tabs)"
	}
	return &Error{Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// badByte returns the offset of the first byte YAML does not allow (bad
// UTF-8 or a control character other than tab and line breaks), or -1.
func badByte(src []byte) int {
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		switch {
		case r == utf8.RuneError && n <= 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0x7f && r < 0xa0 && r != 0x85,
			r == 0xfffe || r == 0xffff:
			return i
		}
		i += n
	}
	return -1
}

// tabIndented returns the first line (from 1) whose indentation holds a
// tab, or 0.
func tabIndented(src []byte) int {
	for i, l := range bytes.Split(src, []byte("\n")) {
		indent := l[:len(l)-len(bytes.TrimLeft(l, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}

// coreTags are the tags a manifest may spell out; others (!!binary,
// !custom) would change what a value means.
var coreTags = []string{"!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!timestamp"}

// refuseAliasesAndTags refuses aliases anywhere in n, so no input expands
// beyond its size, and explicit tags outside the core schema.
func refuseAliasesAndTags(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return &Error{Line: n.Line, Err: fmt.Errorf("alias *%s: aliases are not allowed", n.Value)}
	}
	if n.Style&yaml.TaggedStyle != 0 && !slices.Contains(coreTags, n.Tag) {
		return &Error{Line: n.Line, Err: fmt.Errorf("tag %s is not allowed", n.Tag)}
	}
	for _, c := range n.Content {
		if err := refuseAliasesAndTags(c); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) manifest(root *yaml.Node, m *Manifest) error {
	l, p := &m.Limits, &m.Permissions
	err := d.object(root, "", map[string]handler{
		"name":   scalar(&m.Name, "a name", checked(checkName)),
		"module": scalar(&m.Module, "a path", checked(checkRelPath)),
		"owner":  scalar(&m.Owner, "text", checked(checkOwner)),
		"env":    env(&m.Env),
		"limits": d.fields(map[string]handler{
			"memory":          scalar(&l.Memory, "a size", size(checkMemory)),
			"timeout":         scalar(&l.Timeout, "a duration", duration),
			"concurrency":     scalar(&l.Concurrency, "a whole number", concurrency),
			"rate":            scalar(&l.Rate, "a rate", parseRate),
			"rate_per_caller": scalar(&l.RatePerCaller, "a rate", parseRate),
			"body":            scalar(&l.Body, "a size", size(checkBody)),
			"response":        scalar(&l.Response, "a size", size(checkResponse)),
		}),
		"budget": d.fields(map[string]handler{
			"gb_seconds":  scalar(&m.Budget.GBSeconds, "a budget", budget(false)),
			"invocations": scalar(&m.Budget.Invocations, "a budget", budget(true)),
		}),
		"http": d.fields(map[string]handler{
			"auth":    scalar(&m.HTTP.Auth, "an auth mode", checked(checkAuth)),
			"methods": list(&m.HTTP.Methods, checkMethod),
			"callers": list(&m.HTTP.Callers, checkName),
		}),
		"input": d.fields(map[string]handler{
			"schema":        scalar(&m.Input.Schema, "a path", checked(checkRelPath)),
			"content_types": list(&m.Input.ContentTypes, checkContentType),
		}),
		"permissions": d.fields(map[string]handler{
			"kv":      kv(&p.KV),
			"objects": kv(&p.Objects),
			"secrets": list(&p.Secrets, checkSecret),
			"egress":  list(&p.Egress, checkEgress),
			"invoke":  list(&p.Invoke, checkName),
			"publish": list(&p.Publish, CheckSubjectPattern),
		}),
		"triggers":  d.triggers(&m.Triggers),
		"sbom":      scalar(&m.SBOM, "a path", checked(checkRelPath)),
		"lockfiles": list(&m.LockFiles, checkLockFile),
		"vulnerabilities": d.fields(map[string]handler{
			"block": scalar(&m.Vulnerabilities.Block, "a severity", checked(checkSeverity)),
		}),
	})
	if err != nil {
		return err
	}
	for _, r := range []struct{ field, value string }{{"name", m.Name}, {"module", m.Module}} {
		if r.value == "" {
			return &Error{Line: root.Line, Field: r.field, Err: errRequired}
		}
	}
	if e := m.checkTriggers(); e != nil {
		e.Line = d.lineOf(e.Field)
		return e
	}
	return nil
}

// lineOf is the line of field, or of the nearest enclosing field present.
func (d *decoder) lineOf(field string) int {
	for f := field; f != ""; {
		if l, ok := d.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

// fields returns a handler that decodes a mapping with the given fields.
func (d *decoder) fields(fs map[string]handler) handler {
	return func(v *yaml.Node, field string) error { return d.object(v, field, fs) }
}

// object decodes the mapping n with a handler for each known field. A
// null value leaves the field at its default.
func (d *decoder) object(n *yaml.Node, field string, fs map[string]handler) error {
	return mapping(n, field, func(k, v *yaml.Node) error {
		h, ok := fs[k.Value]
		if !ok {
			return &Error{Line: k.Line, Field: field, Err: unknownField(k.Value, fs)}
		}
		f := k.Value
		if field != "" {
			f = field + "." + k.Value
		}
		d.lines[f] = v.Line
		if isNull(v) {
			return nil
		}
		return h(v, f)
	})
}

// mapping calls each for every key and value of n in order, refusing
// duplicate and non-scalar keys.
func mapping(n *yaml.Node, field string, each func(k, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return &Error{Line: n.Line, Field: field, Err: fmt.Errorf("want a mapping, found %s", kindName(n))}
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return &Error{Line: k.Line, Field: field, Err: fmt.Errorf("want a plain key, found %s", kindName(k))}
		}
		if line, ok := seen[k.Value]; ok {
			return &Error{Line: k.Line, Field: field, Err: fmt.Errorf("duplicate key %q (first on line %d)", k.Value, line)}
		}
		seen[k.Value] = k.Line
		if err := each(k, v); err != nil {
			return err
		}
	}
	return nil
}

// scalar returns a handler that reads a scalar's literal text with parse
// and stores the result in dst. what names the expected value in errors.
func scalar[T any](dst *T, what string, parse func(string) (T, error)) handler {
	return func(v *yaml.Node, field string) error {
		if v.Kind != yaml.ScalarNode {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("want %s, found %s", what, kindName(v))}
		}
		x, err := parse(v.Value)
		if err != nil {
			return &Error{Line: v.Line, Field: field, Err: err}
		}
		*dst = x
		return nil
	}
}

func checked(check func(string) error) func(string) (string, error) {
	return func(s string) (string, error) { return s, check(s) }
}

func size(check func(Size) error) func(string) (Size, error) {
	return func(s string) (Size, error) {
		z, err := parseSize(s)
		if err != nil {
			return 0, err
		}
		return z, check(z)
	}
}

func budget(whole bool) func(string) (BudgetAmount, error) {
	return func(s string) (BudgetAmount, error) { return parseBudget(s, whole) }
}

func duration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	return d, checkTimeout(d)
}

func concurrency(s string) (int, error) {
	n, err := parseInt(s)
	if err != nil {
		return 0, err
	}
	return n, checkConcurrency(n)
}

// list returns a handler that reads a list of strings, checking each and
// refusing duplicates. An empty list stores nil.
func list(dst *[]string, check func(string) error) handler {
	return func(v *yaml.Node, field string) error {
		if v.Kind != yaml.SequenceNode {
			return &Error{Line: v.Line, Field: field, Err: fmt.Errorf("want a list, found %s", kindName(v))}
		}
		var out []string
		seen := make(map[string]int, len(v.Content))
		for i, it := range v.Content {
			f := field + "[" + strconv.Itoa(i) + "]"
			if err := scalarText(it); err != nil {
				return &Error{Line: it.Line, Field: f, Err: err}
			}
			if err := check(it.Value); err != nil {
				return &Error{Line: it.Line, Field: f, Err: err}
			}
			if line, ok := seen[it.Value]; ok {
				return &Error{Line: it.Line, Field: f, Err: fmt.Errorf("duplicate %q (first on line %d)", it.Value, line)}
			}
			seen[it.Value] = it.Line
			out = append(out, it.Value)
		}
		*dst = out
		return nil
	}
}

// scalarText refuses a node that is not a non-null scalar: a list item or
// map value where a string is wanted.
func scalarText(n *yaml.Node) error {
	switch {
	case n.Kind != yaml.ScalarNode:
		return fmt.Errorf("want a string, found %s", kindName(n))
	case isNull(n):
		return errors.New("no value (write \"\" for an empty string, or quote the word)")
	}
	return nil
}

// env returns a handler for the env mapping. An empty mapping stores nil.
func env(dst *map[string]string) handler {
	return func(v *yaml.Node, field string) error {
		out := make(map[string]string)
		err := mapping(v, field, func(k, val *yaml.Node) error {
			if err := checkEnvKey(k.Value); err != nil {
				return &Error{Line: k.Line, Field: field, Err: err}
			}
			f := field + "." + k.Value
			if err := scalarText(val); err != nil {
				return &Error{Line: val.Line, Field: f, Err: err}
			}
			if err := checkEnvValue(val.Value); err != nil {
				return &Error{Line: val.Line, Field: f, Err: err}
			}
			out[k.Value] = val.Value
			return nil
		})
		if err != nil {
			return err
		}
		if err := checkEnvCount(len(out)); err != nil {
			return &Error{Line: v.Line, Field: field, Err: err}
		}
		if len(out) > 0 {
			*dst = out
		}
		return nil
	}
}

// kv returns a handler for permissions.kv and permissions.objects: bucket
// names to access modes. An empty mapping stores nil.
func kv(dst *map[string]string) handler {
	return func(v *yaml.Node, field string) error {
		out := make(map[string]string)
		err := mapping(v, field, func(k, val *yaml.Node) error {
			if err := checkBucket(k.Value); err != nil {
				return &Error{Line: k.Line, Field: field, Err: err}
			}
			f := field + "." + k.Value
			if err := scalarText(val); err != nil {
				return &Error{Line: val.Line, Field: f, Err: err}
			}
			if err := checkAccess(val.Value); err != nil {
				return &Error{Line: val.Line, Field: f, Err: err}
			}
			out[k.Value] = val.Value
			return nil
		})
		if err != nil {
			return err
		}
		if len(out) > 0 {
			*dst = out
		}
		return nil
	}
}

// isNull reports whether n is a null scalar: empty, "~" or "null".
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes n for an error: "a mapping", "a list", "null" or
// the quoted value.
func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	case n.Kind == yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "something else"
}

// unknownField reports key as unknown, suggesting a known field spelled
// much the same.
func unknownField(key string, fs map[string]handler) error {
	best, bestDist := "", 3
	for name := range fs {
		d := editDistance(key, name)
		if d < bestDist || (d == bestDist && best != "" && name < best) {
			best, bestDist = name, d
		}
	}
	if best != "" && bestDist < len(key) {
		return fmt.Errorf("unknown field %q (did you mean %q?)", key, best)
	}
	return fmt.Errorf("unknown field %q", key)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 {
		return len(a) // too long to be a typo of a field name
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
