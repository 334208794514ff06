package manifest

import (
	"errors"
	"strconv"
	"strings"
)

// Error reports what is wrong with a manifest and where. It prints as
//
//	moat.yaml:7: limits.memory: "64MB" is not a size (use KiB, MiB or GiB)
//
// leaving out the parts that are unknown: without File it starts
// "line 7: ", without Line it starts "moat.yaml: " and without Field the
// problem concerns the whole document or a mapping's keys.
type Error struct {
	File  string // base name of the manifest file; set by Load, empty from Parse and Validate
	Line  int    // 1-based line of the offending value; 0 when unknown, as from Validate
	Field string // dotted path of the field, like "limits.memory" or "http.methods[1]"
	Err   error  // the problem
}

// Error returns the location and the problem on one line.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

// errRequired reports a required field that is absent or null.
var errRequired = errors.New("required field is missing")
