package manifest

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that whatever Parse accepts, Validate accepts too, and
// that it survives the registry's JSON round trip unchanged.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		f.Add(readTestdata(f, filepath.Base(file)))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := Parse(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse error is %T, want *Error: %v", err, err)
			}
			return // refusing input is fine; panics and hangs are not
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		var back Manifest
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(&back, m) {
			t.Fatalf("JSON round trip changed the manifest:\n got %+v\nwant %+v\njson %s", back, *m, b)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("Validate after the JSON round trip: %v", err)
		}
	})
}
