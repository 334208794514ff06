package vulndb

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidDB reports bytes that Decode cannot read as an encoded DB.
var ErrInvalidDB = errors.New("invalid vulnerability database")

// Finding is one advisory that affects one dependency.
type Finding struct {
	ID        string   `json:"id"`
	Aliases   []string `json:"aliases,omitempty"`
	Summary   string   `json:"summary,omitempty"`
	Severity  string   `json:"severity,omitempty"` // Low, Medium, High, Critical; "" when the advisory gives none and the caller's policy decides
	Score     float64  `json:"score,omitempty"`    // CVSS v3 base score; 0 when not known
	Ecosystem string   `json:"ecosystem"`          // as OSV spells it: "Go", "npm", "PyPI"
	Package   string   `json:"package"`            // as the caller named it
	Version   string   `json:"version"`            // the version found, as the caller gave it
	Fixed     string   `json:"fixed,omitempty"`    // lowest fixed version above Version, as the advisory writes it; "" when none
}

// DB is a set of advisories indexed by ecosystem and package. A DB does not
// change once built, so it is safe for concurrent use; a nil *DB and the
// zero DB are empty databases.
type DB struct {
	advisories map[string]*Advisory // by id, withdrawn ones included
	index      map[pkgKey][]*entry  // withdrawn ones left out
	counts     map[string]int
	total      int
}

// pkgKey names a package in the index: a canonical ecosystem and the name
// as its scheme writes it (PEP 503 for PyPI).
type pkgKey struct{ eco, name string }

// entry is what one advisory says about one package, ready for matching.
type entry struct {
	adv   *Advisory
	spans []span
	raw   map[string]bool // versions listed, as written
	keys  map[string]bool // versions listed, in canonical form
}

// span is a compiled range: its events parsed and sorted.
type span struct {
	generic bool    // ordered as plain SemVer, not the ecosystem's way
	events  []point // sorted by version; introduced first among equals
	limits  []version
}

type eventKind uint8

const (
	introduced eventKind = iota
	lastAffected
	fixed
)

type point struct {
	kind eventKind
	raw  string
	v    version // nil: the first version
}

// New returns a DB of the given advisories. For an id given more than
// once, the one with the later Modified time wins, and among equal times
// the later one in the list. New copies what it keeps; the caller may
// change the advisories afterwards.
func New(advisories []*Advisory) *DB {
	own := make([]*Advisory, 0, len(advisories))
	for _, a := range advisories {
		if a != nil {
			own = append(own, a.clone())
		}
	}
	return fromParsed(own)
}

// Merge returns a DB holding the advisories of db and other. For an id in
// both, the one with the later Modified time wins, and other's among equal
// times (the Go database leaves every Modified at the zero time, so a
// newer import must win a tie). Neither db nor other changes.
func (db *DB) Merge(other *DB) *DB {
	m := make(map[string]*Advisory, db.size()+other.size())
	for _, d := range [...]*DB{db, other} {
		if d == nil {
			continue
		}
		for id, a := range d.advisories {
			if old, ok := m[id]; ok && a.Modified.Before(old.Modified) {
				continue
			}
			m[id] = a
		}
	}
	return build(m)
}

func (db *DB) size() int {
	if db == nil {
		return 0
	}
	return len(db.advisories)
}

// Counts returns the number of advisories that can match (withdrawn ones
// are left out) per ecosystem; an advisory affecting two ecosystems counts
// in both. The map is the caller's.
func (db *DB) Counts() map[string]int {
	out := map[string]int{}
	if db != nil {
		for k, v := range db.counts {
			out[k] = v
		}
	}
	return out
}

// Len returns the number of advisories that can match: withdrawn ones are
// left out.
func (db *DB) Len() int {
	if db == nil {
		return 0
	}
	return db.total
}

// build indexes advisories, which it then owns.
func build(advisories map[string]*Advisory) *DB {
	db := &DB{advisories: advisories, index: map[pkgKey][]*entry{}, counts: map[string]int{}}
	for _, a := range advisories {
		if !a.Withdrawn.IsZero() {
			continue
		}
		db.total++
		ecosystems := map[string]bool{}
		entries := map[pkgKey]*entry{}
		for _, af := range a.Affected {
			eco := canonicalEcosystem(af.Ecosystem)
			ecosystems[eco] = true
			sch := schemeFor(eco)
			k := pkgKey{eco, af.Package}
			if sch != nil {
				k.name = sch.name(af.Package)
			}
			e := entries[k]
			if e == nil {
				e = &entry{adv: a}
				entries[k] = e
				db.index[k] = append(db.index[k], e)
			}
			for _, r := range af.Ranges {
				if sp, ok := compile(eco, r); ok {
					e.spans = append(e.spans, sp)
				}
			}
			for _, v := range af.Versions {
				if e.raw == nil {
					e.raw, e.keys = map[string]bool{}, map[string]bool{}
				}
				e.raw[v] = true
				if sch == nil {
					continue
				}
				if pv, err := sch.parse(v); err == nil {
					e.keys[pv.key()] = true
				}
			}
		}
		for eco := range ecosystems {
			db.counts[eco]++
		}
	}
	for _, list := range db.index {
		slices.SortFunc(list, func(a, b *entry) int { return strings.Compare(a.adv.ID, b.adv.ID) })
	}
	return db
}

// compile parses and sorts a range's events. It reports false for a range
// this package cannot order (an ECOSYSTEM range of an unknown ecosystem, or
// a type it does not know).
//
// An event whose version does not parse is read so as to over-report
// rather than miss: an unreadable introduced counts as the first version,
// and an unreadable fixed, last_affected or limit is dropped.
func compile(eco string, r Range) (span, bool) {
	sch, generic := rangeScheme(eco, r.Type)
	if sch == nil {
		return span{}, false
	}
	sp := span{generic: generic}
	for _, e := range r.Events {
		switch {
		case e.Introduced != "":
			p := point{kind: introduced, raw: e.Introduced}
			if e.Introduced != "0" {
				p.v, _ = sch.parse(e.Introduced)
			}
			sp.events = append(sp.events, p)
		case e.Fixed != "":
			if v, err := sch.parse(e.Fixed); err == nil {
				sp.events = append(sp.events, point{kind: fixed, raw: e.Fixed, v: v})
			}
		case e.LastAffected != "":
			if v, err := sch.parse(e.LastAffected); err == nil {
				sp.events = append(sp.events, point{kind: lastAffected, raw: e.LastAffected, v: v})
			}
		case e.Limit != "" && e.Limit != "*":
			if v, err := sch.parse(e.Limit); err == nil {
				sp.limits = append(sp.limits, v)
			}
		}
	}
	slices.SortStableFunc(sp.events, func(a, b point) int {
		switch {
		case a.v == nil && b.v == nil:
		case a.v == nil:
			return -1
		case b.v == nil:
			return 1
		default:
			if c := a.v.compare(b.v); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.kind, b.kind)
	})
	return sp, true
}

// affects reports whether v is in the range, walking the sorted events as
// the OSV specification does, and if so the first fixed event above v.
func (sp *span) affects(v version) (bool, *point) {
	for _, l := range sp.limits {
		if v.compare(l) >= 0 {
			return false, nil
		}
	}
	in := false
	for i := range sp.events {
		p := &sp.events[i]
		switch p.kind {
		case introduced:
			if p.v == nil || v.compare(p.v) >= 0 {
				in = true
			}
		case fixed:
			if v.compare(p.v) >= 0 {
				in = false
			}
		case lastAffected:
			if v.compare(p.v) > 0 {
				in = false
			}
		}
	}
	if !in {
		return false, nil
	}
	for i := range sp.events {
		if p := &sp.events[i]; p.kind == fixed && v.compare(p.v) < 0 {
			return true, p
		}
	}
	return true, nil
}

// query is a version being matched, parsed once per scheme it needs.
type query struct {
	raw     string
	eco     version // nil: the ecosystem's scheme cannot read it
	ecoKey  string
	sem     version
	semDone bool
}

func (q *query) semver() version {
	if !q.semDone {
		q.sem, _ = parseSemver(q.raw)
		q.semDone = true
	}
	return q.sem
}

// Match returns the advisories that affect version of the package name in
// ecosystem, sorted by id; nil when none do. A version is affected when a
// range holds it (introduced <= v < fixed, or v <= last_affected) or the
// advisory lists it. Withdrawn advisories never match.
//
// Go module paths and npm names must match exactly, PyPI names after PEP
// 503 normalisation. Go versions may come with or without the "v"; the
// stdlib and toolchain packages also take toolchain versions ("go1.22.1",
// "go1.22rc1"). For an ecosystem other than Go, npm and PyPI, only SEMVER
// ranges and listed versions can match. A version the ecosystem cannot read
// matches listed versions only.
func (db *DB) Match(ecosystem, name, version string) []Finding {
	if db == nil {
		return nil
	}
	eco := canonicalEcosystem(ecosystem)
	sch := schemeFor(eco)
	k := pkgKey{eco, name}
	if sch != nil {
		k.name = sch.name(name)
	}
	entries := db.index[k]
	if len(entries) == 0 {
		return nil
	}
	q := &query{raw: version}
	if sch != nil {
		if v, err := sch.parse(version); err == nil {
			q.eco, q.ecoKey = v, v.key()
		}
	}
	var out []Finding
	for _, e := range entries {
		hit, fix := e.match(q)
		if !hit {
			continue
		}
		f := Finding{
			ID:        e.adv.ID,
			Aliases:   slices.Clone(e.adv.Aliases),
			Summary:   e.adv.Summary,
			Severity:  e.adv.Severity,
			Score:     e.adv.Score,
			Ecosystem: eco,
			Package:   name,
			Version:   version,
		}
		if fix != nil {
			f.Fixed = fix.raw
		}
		out = append(out, f)
	}
	return out
}

// match reports whether q is affected and the lowest fixed event above it
// among the ranges that hold it.
func (e *entry) match(q *query) (bool, *point) {
	hit := e.raw[q.raw] || (q.eco != nil && e.keys[q.ecoKey])
	var best *point
	bestGeneric := false
	for i := range e.spans {
		sp := &e.spans[i]
		v := q.eco
		if sp.generic {
			v = q.semver()
		}
		if v == nil {
			continue
		}
		in, fix := sp.affects(v)
		if !in {
			continue
		}
		hit = true
		switch {
		case fix == nil:
		case best == nil:
			best, bestGeneric = fix, sp.generic
		case bestGeneric == sp.generic && fix.v.compare(best.v) < 0:
			best = fix
		}
	}
	return hit, best
}

// The encoded form of a DB: gzip-compressed JSON, advisories sorted by id.
const (
	encodingFormat  = "moat-vulndb"
	encodingVersion = 1
	maxEncodedSize  = MaxTotalSize // bytes of JSON Decode will read
)

type encoded struct {
	Format     string      `json:"format"`
	Version    int         `json:"version"`
	Advisories []*Advisory `json:"advisories"`
}

// Encode returns db in a compact, versioned form that Decode reads back:
// gzip-compressed JSON. The same advisories always encode to the same
// bytes.
func (db *DB) Encode() ([]byte, error) {
	doc := encoded{Format: encodingFormat, Version: encodingVersion, Advisories: []*Advisory{}}
	if db != nil {
		for _, a := range db.advisories {
			doc.Advisories = append(doc.Advisories, a)
		}
	}
	slices.SortFunc(doc.Advisories, func(a, b *Advisory) int { return strings.Compare(a.ID, b.ID) })
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(doc); err != nil {
		return nil, fmt.Errorf("encode vulnerability database: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encode vulnerability database: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode reads a DB written by Encode. It refuses, with an error matching
// ErrInvalidDB, anything else: bytes that are not gzip or not the JSON
// Encode writes, another format version, trailing data, a failed checksum,
// or an advisory ParseOSV would not have produced. More than 2 GiB of JSON
// is refused with ErrTooLarge.
func Decode(b []byte) (*DB, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip: %w", ErrInvalidDB, err)
	}
	dec := json.NewDecoder(&capReader{r: zr, left: maxEncodedSize})
	dec.DisallowUnknownFields()
	var doc encoded
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%w: over %d bytes: %w", ErrInvalidDB, int64(maxEncodedSize), ErrTooLarge)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidDB, err)
	}
	if doc.Format != encodingFormat || doc.Version != encodingVersion {
		return nil, fmt.Errorf("%w: format %q version %d, want %q version %d", ErrInvalidDB, doc.Format, doc.Version, encodingFormat, encodingVersion)
	}
	// Reading on to the end checks that nothing follows and, at gzip's end,
	// the checksum.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("%w: data after the database", ErrInvalidDB)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidDB, err)
	}
	m := make(map[string]*Advisory, len(doc.Advisories))
	for i, a := range doc.Advisories {
		if a == nil {
			return nil, fmt.Errorf("%w: advisories[%d]: null", ErrInvalidDB, i)
		}
		if err := a.validate(); err != nil {
			return nil, fmt.Errorf("%w: advisories[%d]: %w", ErrInvalidDB, i, err)
		}
		if _, dup := m[a.ID]; dup {
			return nil, fmt.Errorf("%w: advisories[%d]: %s appears twice", ErrInvalidDB, i, a.ID)
		}
		m[a.ID] = a
	}
	return build(m), nil
}

// capReader reads from r until left bytes are read, then fails with
// ErrTooLarge.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// validate checks that a holds only what ParseOSV can produce, so that a
// decoded DB is as sound as an imported one.
func (a *Advisory) validate() error {
	fail := func(field, format string, args ...any) error {
		return &RecordError{ID: a.ID, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if problem := checkID(a.ID); problem != "" {
		return fail("id", "%s", problem)
	}
	if utf8.RuneCountInString(a.Summary) > MaxSummaryLen || a.Summary != cleanSummary(a.Summary) {
		return fail("summary", "not a cleaned summary")
	}
	for i, s := range a.Aliases {
		if problem := checkID(s); problem != "" {
			return fail(fmt.Sprintf("aliases[%d]", i), "%s", problem)
		}
		if slices.Contains(a.Aliases[:i], s) {
			return fail(fmt.Sprintf("aliases[%d]", i), "repeated")
		}
	}
	switch a.Severity {
	case "", Low, Medium, High, Critical:
	default:
		return fail("severity", "unknown severity %q", a.Severity)
	}
	if math.IsNaN(a.Score) || a.Score < 0 || a.Score > 10 {
		return fail("score", "%v is not a CVSS score", a.Score)
	}
	plain := func(s string) bool { return s != "" && strings.IndexFunc(s, unicode.IsControl) < 0 }
	for i, af := range a.Affected {
		f := fmt.Sprintf("affected[%d]", i)
		if !plain(af.Ecosystem) || !plain(af.Package) {
			return fail(f+".package", "empty, or a control character")
		}
		for j, r := range af.Ranges {
			rf := fmt.Sprintf("%s.ranges[%d]", f, j)
			if r.Type != "SEMVER" && r.Type != "ECOSYSTEM" {
				return fail(rf+".type", "unknown range type %q", r.Type)
			}
			if len(r.Events) == 0 {
				return fail(rf+".events", "no events")
			}
			for k, e := range r.Events {
				n := 0
				for _, s := range [...]string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
					if s == "" {
						continue
					}
					if !plain(s) {
						return fail(fmt.Sprintf("%s.events[%d]", rf, k), "control character")
					}
					n++
				}
				if n != 1 {
					return fail(fmt.Sprintf("%s.events[%d]", rf, k), "%d of introduced, fixed, last_affected, limit; want 1", n)
				}
			}
		}
		for j, v := range af.Versions {
			if !plain(v) {
				return fail(fmt.Sprintf("%s.versions[%d]", f, j), "empty, or a control character")
			}
		}
	}
	return nil
}

// clone returns a deep copy of a.
func (a *Advisory) clone() *Advisory {
	c := *a
	c.Aliases = slices.Clone(a.Aliases)
	c.Affected = slices.Clone(a.Affected)
	for i := range c.Affected {
		af := &c.Affected[i]
		af.Versions = slices.Clone(af.Versions)
		af.Ranges = slices.Clone(af.Ranges)
		for j := range af.Ranges {
			af.Ranges[j].Events = slices.Clone(af.Ranges[j].Events)
		}
	}
	return &c
}
