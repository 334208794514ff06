package validate

import (
	"strings"
	"testing"
)

const contact = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["name", "email"],
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[\\p{L} .'-]+$"},
    "email": {"type": "string", "format": "email", "maxLength": 254},
    "colour": {"enum": ["red", "green", "blue"]},
    "id": {"type": "string", "format": "uuid"},
    "when": {"type": "string", "format": "date-time"}
  }
}`

func TestCheck(t *testing.T) {
	s, err := Compile([]byte(contact))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		body, wantLoc, wantReason string // wantReason "" means valid
	}{
		{`{"name":"Carole","email":"carole@example.com"}`, "", ""},
		{`{"name":"Carole","email":"carole@example.com","colour":"red","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","when":"2026-11-28T01:00:00Z"}`, "", ""},
		{`{"name":"Carole","email":"a@b.com; cat /etc/passwd"}`, "/email", "email"},
		{`{"name":"Carole","email":"$(curl evil)@x.com"}`, "/email", "email"},
		{`{"name":"Robert'); DROP TABLE contacts;--","email":"r@example.com"}`, "/name", "pattern"},
		{`{"name":"<script>alert(1)</script>","email":"r@example.com"}`, "/name", "pattern"},
		{`{"name":"Carole","email":"carole@example.com","admin":true}`, "", "additional"},
		{`{"name":"Carole"}`, "", "email"},
		{`{"name":"Carole","email":"c@example.com","colour":"purple"}`, "/colour", ""},
		{`{"name":"Carole","email":"c@example.com","id":"not-a-uuid"}`, "/id", "uuid"},
		{`{"name":"Carole","email":"c@example.com","when":"yesterday"}`, "/when", "date-time"},
		{`{"name":"Carole","email":"c@exa\u0000mple.com"}`, "/email", "email"},
		{`{"name":"Ca\u202erole","email":"c@example.com"}`, "/name", "pattern"},
		{`not json`, "", "not JSON"},
		{``, "", "not JSON"},
		{`{"name":"a","email":"b@c.de"} trailing`, "", "not JSON"},
		{strings.Repeat("[", 100000) + strings.Repeat("]", 100000), "", "not JSON"},
		{`[]`, "", "object"},
	}
	for _, tt := range tests {
		name := tt.body
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			got := s.Check([]byte(tt.body))
			if tt.wantReason == "" && tt.wantLoc == "" {
				if got != nil {
					t.Fatalf("Check = %v, want valid", got)
				}
				return
			}
			if len(got) == 0 {
				t.Fatalf("Check accepted %q", tt.body)
			}
			found := false
			for _, f := range got {
				if f.Location == tt.wantLoc && strings.Contains(strings.ToLower(f.Reason), strings.ToLower(tt.wantReason)) {
					found = true
				}
			}
			if !found {
				t.Fatalf("Check = %+v, want location %q with %q", got, tt.wantLoc, tt.wantReason)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":     `{`,
		"remote ref":   `{"$ref": "https://evil.example/schema.json"}`,
		"file ref":     `{"$ref": "file:///etc/passwd"}`,
		"bad type":     `{"type": "strnig"}`,
		"bad pattern":  `{"type": "string", "pattern": "("}`,
		"huge":         `{"description": "` + strings.Repeat("x", MaxSchema) + `"}`,
		"metaschema 7": `{"$schema": "http://json-schema.org/draft-07/schema#", "type": 3}`,
	} {
		if _, err := Compile([]byte(doc)); err == nil {
			t.Errorf("Compile(%s) succeeded", name)
		}
	}
	// A local $ref is fine.
	if _, err := Compile([]byte(`{"$defs":{"n":{"type":"string"}},"properties":{"a":{"$ref":"#/$defs/n"}}}`)); err != nil {
		t.Errorf("local $ref: %v", err)
	}
}

func FuzzCheck(f *testing.F) {
	s, err := Compile([]byte(contact))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"name":"Carole","email":"carole@example.com"}`))
	f.Add([]byte(`[[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, fl := range s.Check(body) {
			if fl.Reason == "" {
				t.Fatalf("a failure without a reason for %q", body)
			}
		}
	})
}
