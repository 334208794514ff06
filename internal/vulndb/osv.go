package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Caps on what ParseOSV accepts.
const (
	MaxRecordSize = 4 << 20 // bytes of one OSV record
	MaxIDLen      = 200     // characters of an id or alias
	MaxSummaryLen = 300     // characters of a summary; longer ones are cut
	maxDepth      = 64      // nesting of JSON arrays and objects
)

// ErrInvalidRecord reports an OSV record that cannot be used. The error
// carrying it is a *RecordError naming the problem.
var ErrInvalidRecord = errors.New("invalid OSV record")

// ErrTooLarge reports input over one of the package's caps: a record, an
// archive entry, an archive's total or entry count, or an encoded DB.
var ErrTooLarge = errors.New("input too large")

// RecordError says what is wrong with an OSV record and where. It matches
// ErrInvalidRecord with errors.Is, and ErrTooLarge for a record over
// MaxRecordSize.
type RecordError struct {
	ID      string // the record's id; "" when not known yet
	Field   string // path of the offending value, e.g. "affected[0].ranges[1].type"; "" for the whole record
	Line    int    // line of a JSON syntax error; 0 otherwise
	Problem string
	cause   error
}

// Error returns "ID: line N: field: problem", leaving out the parts not
// known.
func (e *RecordError) Error() string {
	var b strings.Builder
	if e.ID != "" {
		b.WriteString(e.ID + ": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Unwrap returns ErrInvalidRecord and, for a record over a cap, ErrTooLarge.
func (e *RecordError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrInvalidRecord, e.cause}
	}
	return []error{ErrInvalidRecord}
}

// Advisory is the part of an OSV record that matching needs. Times are
// UTC; a zero Withdrawn means the advisory stands.
type Advisory struct {
	ID        string     `json:"id"`
	Summary   string     `json:"summary,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Modified  time.Time  `json:"modified"`
	Published time.Time  `json:"published,omitzero"`
	Withdrawn time.Time  `json:"withdrawn,omitzero"`
	Severity  string     `json:"severity,omitempty"` // Low, Medium, High, Critical, or "" when the record gives none
	Score     float64    `json:"score,omitempty"`    // CVSS v3 base score; 0 when not known
	Affected  []Affected `json:"affected,omitempty"`
}

// Affected is one package an advisory affects and the versions affected.
type Affected struct {
	Ecosystem string   `json:"ecosystem"` // as OSV names it: "Go", "npm", "PyPI", ...
	Package   string   `json:"package"`   // as the record writes it
	Ranges    []Range  `json:"ranges,omitempty"`
	Versions  []string `json:"versions,omitempty"` // versions affected, listed one by one
}

// Range is an OSV range of type SEMVER or ECOSYSTEM (GIT ranges are not
// kept). Its events may come in any order.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set. Introduced "0"
// means from the first version; Limit "*" means no limit.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// ParseOSV reads one OSV record (https://ossf.github.io/osv-schema/) and
// keeps what matching needs. It refuses, with a *RecordError naming the
// field, a record that is not a JSON object, is over MaxRecordSize or
// nested deeper than 64 levels, lacks an id or modified time, has an id or
// alias over MaxIDLen characters, a value of the wrong type, a range of a
// type other than SEMVER, ECOSYSTEM or GIT, or an event that is not an
// object with exactly one of introduced, fixed, last_affected and limit.
// Fields it does not use are not checked. Summaries are cut to
// MaxSummaryLen characters with control characters turned into spaces,
// and repeated aliases dropped.
//
// The severity comes from the first CVSS v3 vector (its base score), else
// from database_specific.severity (GHSA's LOW, MODERATE, HIGH, CRITICAL);
// CVSS v4 vectors are not scored. A record with none, like the Go
// database's, has severity "".
func ParseOSV(b []byte) (*Advisory, error) {
	if len(b) > MaxRecordSize {
		return nil, &RecordError{Problem: fmt.Sprintf("record is %d bytes, over the %d MiB cap", len(b), MaxRecordSize>>20), cause: ErrTooLarge}
	}
	if line, ok := checkDepth(b); !ok {
		return nil, &RecordError{Line: line, Problem: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	if k := jsonKind(b); k != '{' {
		if !json.Valid(b) {
			return nil, syntaxError(b)
		}
		return nil, &RecordError{Problem: "not a JSON object but " + kindName(k)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, syntaxError(b)
	}
	p := &recordParser{}
	return p.record(top)
}

// syntaxError describes why b is not JSON.
func syntaxError(b []byte) error {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &RecordError{Line: 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n")), Problem: "not JSON: " + se.Error()}
	}
	if err == nil {
		return &RecordError{Problem: "not a JSON object"}
	}
	return &RecordError{Problem: "not JSON: " + err.Error()}
}

// checkDepth reports whether b nests arrays and objects at most maxDepth
// deep, and if not the line where it goes deeper. It does not check that b
// is JSON.
func checkDepth(b []byte) (line int, ok bool) {
	depth, inString, escaped := 0, false, false
	line = 1
	for _, c := range b {
		switch {
		case c == '\n':
			line++
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return line, false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return 0, true
}

// jsonKind returns the first byte of the JSON value in raw: '{', '[', '"',
// 'n' (null), 't' or 'f' (booleans), or a digit or '-' (numbers); 0 when
// raw is empty.
func jsonKind(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func kindName(k byte) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case 0:
		return "empty"
	}
	return "a number"
}

// recordParser reads the fields of one record, naming the record in its
// errors once the id is known.
type recordParser struct {
	id string
}

func (p *recordParser) errorf(field, format string, args ...any) error {
	return &RecordError{ID: p.id, Field: field, Problem: fmt.Sprintf(format, args...)}
}

// want checks that raw holds a value of kind k.
func (p *recordParser) want(raw json.RawMessage, k byte, field, what string) error {
	if got := jsonKind(raw); got != k {
		return p.errorf(field, "want %s, got %s", what, kindName(got))
	}
	return nil
}

func (p *recordParser) object(raw json.RawMessage, field string) (map[string]json.RawMessage, error) {
	if err := p.want(raw, '{', field, "an object"); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, p.errorf(field, "%s", err.Error())
	}
	return m, nil
}

func (p *recordParser) array(raw json.RawMessage, field string) ([]json.RawMessage, error) {
	if err := p.want(raw, '[', field, "an array"); err != nil {
		return nil, err
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, p.errorf(field, "%s", err.Error())
	}
	return a, nil
}

func (p *recordParser) str(raw json.RawMessage, field string) (string, error) {
	if err := p.want(raw, '"', field, "a string"); err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", p.errorf(field, "%s", err.Error())
	}
	return s, nil
}

// optional returns m[key] unless it is absent or null.
func optional(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	raw, ok := m[key]
	if !ok || jsonKind(raw) == 'n' {
		return nil, false
	}
	return raw, true
}

// optionalString returns m[key] as a string; "" when absent or null.
func (p *recordParser) optionalString(m map[string]json.RawMessage, key, field string) (string, error) {
	raw, ok := optional(m, key)
	if !ok {
		return "", nil
	}
	return p.str(raw, field)
}

// optionalArray returns m[key] as an array; nil when absent or null.
func (p *recordParser) optionalArray(m map[string]json.RawMessage, key, field string) ([]json.RawMessage, error) {
	raw, ok := optional(m, key)
	if !ok {
		return nil, nil
	}
	return p.array(raw, field)
}

// name checks a string that must be non-empty and free of control
// characters: an ecosystem, a package name or a version.
func (p *recordParser) name(s, field string) error {
	if s == "" {
		return p.errorf(field, "empty")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return p.errorf(field, "control character at byte %d", i)
	}
	return nil
}

// checkID checks an id or alias: 1 to MaxIDLen characters, printable
// ASCII, no spaces.
func checkID(s string) string {
	switch {
	case s == "":
		return "empty"
	case utf8.RuneCountInString(s) > MaxIDLen:
		return fmt.Sprintf("%d characters, over the %d cap", utf8.RuneCountInString(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Sprintf("byte %d is not printable ASCII", i)
		}
	}
	return ""
}

func (p *recordParser) timeField(m map[string]json.RawMessage, key string, required bool) (time.Time, error) {
	s, err := p.optionalString(m, key, key)
	if err != nil {
		return time.Time{}, err
	}
	if s == "" {
		if required {
			return time.Time{}, p.errorf(key, "missing")
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, p.errorf(key, "%q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// severity is one entry of an OSV severity list.
type severity struct{ typ, score string }

func (p *recordParser) severities(m map[string]json.RawMessage, field string) ([]severity, error) {
	list, err := p.optionalArray(m, "severity", field)
	if err != nil {
		return nil, err
	}
	var out []severity
	for i, raw := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		o, err := p.object(raw, f)
		if err != nil {
			return nil, err
		}
		var s severity
		if s.typ, err = p.optionalString(o, "type", f+".type"); err != nil {
			return nil, err
		}
		if s.score, err = p.optionalString(o, "score", f+".score"); err != nil {
			return nil, err
		}
		if s.typ == "" {
			return nil, p.errorf(f+".type", "missing")
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *recordParser) record(top map[string]json.RawMessage) (*Advisory, error) {
	raw, ok := optional(top, "id")
	if !ok {
		return nil, p.errorf("id", "missing")
	}
	id, err := p.str(raw, "id")
	if err != nil {
		return nil, err
	}
	if problem := checkID(id); problem != "" {
		return nil, p.errorf("id", "%s", problem)
	}
	p.id = id
	a := &Advisory{ID: id}

	if a.Modified, err = p.timeField(top, "modified", true); err != nil {
		return nil, err
	}
	if a.Published, err = p.timeField(top, "published", false); err != nil {
		return nil, err
	}
	if a.Withdrawn, err = p.timeField(top, "withdrawn", false); err != nil {
		return nil, err
	}
	summary, err := p.optionalString(top, "summary", "summary")
	if err != nil {
		return nil, err
	}
	a.Summary = cleanSummary(summary)

	aliases, err := p.optionalArray(top, "aliases", "aliases")
	if err != nil {
		return nil, err
	}
	for i, raw := range aliases {
		f := fmt.Sprintf("aliases[%d]", i)
		s, err := p.str(raw, f)
		if err != nil {
			return nil, err
		}
		if problem := checkID(s); problem != "" {
			return nil, p.errorf(f, "%s", problem)
		}
		if !slices.Contains(a.Aliases, s) {
			a.Aliases = append(a.Aliases, s)
		}
	}

	sevs, err := p.severities(top, "severity")
	if err != nil {
		return nil, err
	}
	affected, err := p.optionalArray(top, "affected", "affected")
	if err != nil {
		return nil, err
	}
	for i, raw := range affected {
		af, more, err := p.affected(raw, fmt.Sprintf("affected[%d]", i))
		if err != nil {
			return nil, err
		}
		sevs = append(sevs, more...)
		if af != nil {
			a.Affected = append(a.Affected, *af)
		}
	}

	dbSeverity := ""
	if raw, ok := optional(top, "database_specific"); ok {
		ds, err := p.object(raw, "database_specific")
		if err != nil {
			return nil, err
		}
		// database_specific is free-form: a severity that is not a string
		// is not an error, only not used.
		if raw, ok := ds["severity"]; ok && jsonKind(raw) == '"' {
			dbSeverity, _ = p.str(raw, "database_specific.severity")
		}
	}
	a.Severity, a.Score = severityOf(sevs, dbSeverity)
	return a, nil
}

// affected reads one entry of affected[]. It returns nil for an entry
// without a package (GIT-only entries), and the entry's own severities.
func (p *recordParser) affected(raw json.RawMessage, field string) (*Affected, []severity, error) {
	o, err := p.object(raw, field)
	if err != nil {
		return nil, nil, err
	}
	af := &Affected{}
	pkg, hasPkg := optional(o, "package")
	if hasPkg {
		po, err := p.object(pkg, field+".package")
		if err != nil {
			return nil, nil, err
		}
		if af.Ecosystem, err = p.optionalString(po, "ecosystem", field+".package.ecosystem"); err != nil {
			return nil, nil, err
		}
		if err := p.name(af.Ecosystem, field+".package.ecosystem"); err != nil {
			return nil, nil, err
		}
		if af.Package, err = p.optionalString(po, "name", field+".package.name"); err != nil {
			return nil, nil, err
		}
		if err := p.name(af.Package, field+".package.name"); err != nil {
			return nil, nil, err
		}
	}
	sevs, err := p.severities(o, field+".severity")
	if err != nil {
		return nil, nil, err
	}
	ranges, err := p.optionalArray(o, "ranges", field+".ranges")
	if err != nil {
		return nil, nil, err
	}
	for i, raw := range ranges {
		r, err := p.rangeOf(raw, fmt.Sprintf("%s.ranges[%d]", field, i))
		if err != nil {
			return nil, nil, err
		}
		if r != nil {
			af.Ranges = append(af.Ranges, *r)
		}
	}
	versions, err := p.optionalArray(o, "versions", field+".versions")
	if err != nil {
		return nil, nil, err
	}
	for i, raw := range versions {
		f := fmt.Sprintf("%s.versions[%d]", field, i)
		v, err := p.str(raw, f)
		if err != nil {
			return nil, nil, err
		}
		if err := p.name(v, f); err != nil {
			return nil, nil, err
		}
		af.Versions = append(af.Versions, v)
	}
	if !hasPkg {
		return nil, sevs, nil
	}
	return af, sevs, nil
}

// rangeOf reads one range; nil for a GIT range, which matching does not
// use.
func (p *recordParser) rangeOf(raw json.RawMessage, field string) (*Range, error) {
	o, err := p.object(raw, field)
	if err != nil {
		return nil, err
	}
	typ, err := p.optionalString(o, "type", field+".type")
	if err != nil {
		return nil, err
	}
	switch typ {
	case "SEMVER", "ECOSYSTEM", "GIT":
	case "":
		return nil, p.errorf(field+".type", "missing")
	default:
		return nil, p.errorf(field+".type", "unknown range type %q", typ)
	}
	list, err := p.optionalArray(o, "events", field+".events")
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, p.errorf(field+".events", "no events")
	}
	r := &Range{Type: typ}
	for i, raw := range list {
		f := fmt.Sprintf("%s.events[%d]", field, i)
		if jsonKind(raw) != '{' {
			return nil, p.errorf(f, "not an object but %s", kindName(jsonKind(raw)))
		}
		eo, err := p.object(raw, f)
		if err != nil {
			return nil, err
		}
		var e Event
		n := 0
		for _, k := range [...]struct {
			key string
			dst *string
		}{{"introduced", &e.Introduced}, {"fixed", &e.Fixed}, {"last_affected", &e.LastAffected}, {"limit", &e.Limit}} {
			raw, ok := optional(eo, k.key)
			if !ok {
				continue
			}
			s, err := p.str(raw, f+"."+k.key)
			if err != nil {
				return nil, err
			}
			if err := p.name(s, f+"."+k.key); err != nil {
				return nil, err
			}
			*k.dst = s
			n++
		}
		switch {
		case n == 0:
			return nil, p.errorf(f, "an event needs one of introduced, fixed, last_affected, limit")
		case n > 1:
			return nil, p.errorf(f, "an event has one of introduced, fixed, last_affected, limit, not %d", n)
		}
		r.Events = append(r.Events, e)
	}
	if typ == "GIT" {
		return nil, nil
	}
	return r, nil
}

// severityOf picks an advisory's severity and score: the first CVSS v3
// vector with a score above 0, else the first such CVSS v4 vector, else the
// database's own word.
func severityOf(sevs []severity, dbSeverity string) (string, float64) {
	for _, typ := range []string{"CVSS_V3", "CVSS_V4"} {
		for _, s := range sevs {
			if s.typ != typ {
				continue
			}
			score, ok := cvss3Score(s.score)
			if typ == "CVSS_V4" {
				score, ok = cvss4Score(s.score)
			}
			if ok && score > 0 {
				return rating(score), score
			}
		}
	}
	return databaseSeverity(dbSeverity), 0
}

// cleanSummary makes a summary safe to print on a terminal or in a log
// line: control and bidirectional-override characters become spaces, and
// it is cut to MaxSummaryLen characters.
func cleanSummary(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > MaxSummaryLen {
		// Trimming again keeps cleanSummary idempotent, which Decode's
		// check relies on.
		s = strings.TrimRightFunc(string([]rune(s)[:MaxSummaryLen]), unicode.IsSpace)
	}
	return s
}
