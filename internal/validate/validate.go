// Package validate checks request bodies against a function's declared
// input: a JSON Schema 2020-12 document compiled at deploy, with format
// assertions on (email, uri, date-time, uuid, ...). A schema may refer only
// to itself: remote references are refused, so validation never touches the
// network or the file system.
package validate

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ErrSchema reports a schema that cannot be used.
var ErrSchema = errors.New("invalid schema")

// MaxSchema is the largest schema document accepted.
const MaxSchema = 1 << 20

// Schema is a compiled input schema. It is safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

const base = "moat:///input.schema.json"

// Compile compiles a JSON Schema document. Drafts other than 2020-12 are
// honoured when the document's $schema names them; without $schema it is
// 2020-12.
func Compile(doc []byte) (*Schema, error) {
	if len(doc) > MaxSchema {
		return nil, fmt.Errorf("%w: over %d bytes", ErrSchema, MaxSchema)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON: %w", ErrSchema, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(base, v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	s, err := c.Compile(base)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	return &Schema{s: s}, nil
}

// noLoader refuses every reference outside the document.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("reference to %s refused: a schema may refer only to itself", url)
}

// Failure is one reason a body was refused.
type Failure struct {
	Location string `json:"location"` // JSON pointer into the body, "" for the whole body
	Reason   string `json:"reason"`
}

// maxFailures bounds the list a refusal carries.
const maxFailures = 20

// Check validates body and returns why it fails, or nil when it passes.
func (s *Schema) Check(body []byte) []Failure {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []Failure{{Location: "", Reason: "body is not JSON: " + trim(err.Error())}}
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Failure{{Reason: trim(err.Error())}}
	}
	var out []Failure
	collect(ve, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Location < out[j].Location })
	if len(out) > maxFailures {
		out = append(out[:maxFailures], Failure{Reason: fmt.Sprintf("and %d more", len(out)-maxFailures)})
	}
	return out
}

// collect gathers the leaves of the error tree: the specific reasons.
func collect(e *jsonschema.ValidationError, out *[]Failure) {
	if len(e.Causes) == 0 {
		*out = append(*out, Failure{Location: pointer(e.InstanceLocation), Reason: trim(e.Error())})
		return
	}
	for _, c := range e.Causes {
		collect(c, out)
	}
}

func pointer(loc []string) string {
	if len(loc) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// trim keeps reasons short and free of the schema's internal URL.
func trim(s string) string {
	if i := strings.Index(s, ": "); i >= 0 && strings.HasPrefix(s, "jsonschema validation failed") {
		s = s[i+2:]
	}
	s = strings.ReplaceAll(s, base, "")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
