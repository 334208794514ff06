package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// parseTests lists every file in testdata; wantErr "" means the file is
// valid and its Manifest matches FILE.golden.
var parseTests = []struct{ file, wantErr string }{
	{"minimal.yaml", ""},
	{"full.yaml", ""},
	{"bounds.yaml", ""},
	{"small_limits.yaml", ""},
	{"nulls.yaml", ""},
	{"env_scalars.yaml", ""},
	{"markers.yaml", ""},

	{"unknown_field.yaml", `line 3: unknown field "limts" (did you mean "limits"?)`},
	{"unknown_nested.yaml", `line 5: limits: unknown field "memroy"`},
	{"unknown_permission.yaml", `line 4: permissions: unknown field "files"`},
	{"duplicate_key.yaml", `line 4: duplicate key "name" (first on line 1)`},
	{"duplicate_nested.yaml", `line 6: permissions.kv: duplicate key "contacts" (first on line 5)`},
	{"wrong_type_limits.yaml", `line 3: limits: want a mapping, found a list`},
	{"wrong_type_name.yaml", `line 1: name: want a name, found a mapping`},
	{"wrong_type_methods.yaml", `line 4: http.methods: want a list, found "POST"`},
	{"wrong_type_env.yaml", `line 3: env: want a mapping, found a list`},
	{"wrong_type_item.yaml", `line 5: permissions.secrets[0]: want a string, found a mapping`},
	{"complex_key.yaml", `line 3: want a plain key, found a list`},
	{"name_missing.yaml", `line 2: name: required field is missing`},
	{"name_null.yaml", `line 1: name: required field is missing`},
	{"module_missing.yaml", `line 1: module: required field is missing`},
	{"name_bad.yaml", `line 1: name: "Contact" is not a valid function name`},
	{"name_too_long.yaml", `line 1: name: "abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" is not a valid function name`},
	{"name_empty.yaml", `line 1: name: "" is not a valid function name`},
	{"module_dotdot.yaml", `line 2: module: "build/../../fn.wasm" contains ".."`},
	{"module_absolute.yaml", `line 2: module: "/srv/fn.wasm" is absolute`},
	{"module_backslash.yaml", "line 2: module: \"build\\\\fn.wasm\" contains a backslash"},
	{"module_dot.yaml", `line 2: module: "." names the folder itself`},
	{"schema_dotdot.yaml", `line 4: input.schema: "../schema.json" contains ".."`},
	{"sbom_absolute.yaml", `line 3: sbom: "/tmp/app.cdx.json" is absolute`},
	{"owner_control.yaml", "line 3: owner: \"web\\ateam\" contains a control character"},
	{"owner_too_long.yaml", `line 3: owner: 129 characters, more than 128`},
	{"size_bad.yaml", `line 4: limits.memory: "lots" is not a size`},
	{"size_decimal.yaml", `line 4: limits.memory: "1.5GiB" is not a size`},
	{"size_kb.yaml", `line 4: limits.memory: "64MB" is not a size (use KiB, MiB or GiB)`},
	{"size_lower_unit.yaml", `line 4: limits.body: "10kib" is not a size (use KiB, MiB or GiB)`},
	{"size_negative.yaml", `line 4: limits.body: "-1MiB" is not a size`},
	{"size_overflow.yaml", `line 4: limits.body: "9999999999999GiB" is too large`},
	{"memory_not_page.yaml", `line 4: limits.memory: 1100000B is not a multiple of 64KiB`},
	{"memory_too_big.yaml", `line 4: limits.memory: 8GiB is not between 1MiB and 4GiB`},
	{"memory_zero.yaml", `line 4: limits.memory: 0B is not between 1MiB and 4GiB`},
	{"body_too_big.yaml", `line 4: limits.body: 65MiB is not between 0B and 64MiB`},
	{"response_too_small.yaml", `line 4: limits.response: 512B is not between 1KiB and 64MiB`},
	{"duration_bad.yaml", `line 4: limits.timeout: "5" is not a duration`},
	{"duration_words.yaml", `line 4: limits.timeout: "five seconds" is not a duration`},
	{"timeout_negative.yaml", `line 4: limits.timeout: -5s is not positive`},
	{"timeout_zero.yaml", `line 4: limits.timeout: 0s is not positive`},
	{"timeout_too_long.yaml", `line 4: limits.timeout: 1h is not between 1ms and 15m`},
	{"timeout_too_short.yaml", `line 4: limits.timeout: 500µs is not between 1ms and 15m`},
	{"concurrency_zero.yaml", `line 4: limits.concurrency: 0 is not between 1 and 10000`},
	{"concurrency_negative.yaml", `line 4: limits.concurrency: -1 is not between 1 and 10000`},
	{"concurrency_not_int.yaml", `line 4: limits.concurrency: "2.5" is not a whole number`},
	{"rate_bad_unit.yaml", `line 4: limits.rate: "50/min" is not a rate`},
	{"rate_words.yaml", `line 4: limits.rate_per_caller: "5 per second" is not a rate`},
	{"rate_zero.yaml", `line 4: limits.rate: "0/s": the count must be positive`},
	{"rate_negative.yaml", `line 4: limits.rate: "-5/s" is not a rate`},
	{"budget_bad_window.yaml", `line 4: budget.gb_seconds: "100/week": the window must be hour, day or month`},
	{"budget_invocations_decimal.yaml", `line 4: budget.invocations: "1.5/day": the amount must be a whole number`},
	{"budget_zero.yaml", `line 4: budget.invocations: "0/day": the amount must be positive`},
	{"budget_exponent.yaml", `line 4: budget.gb_seconds: "1e6/day" is not a budget`},
	{"budget_huge.yaml", `line 4: budget.invocations: "10000000000000000/day": the amount is more than 1e+15`},
	{"auth_bad.yaml", `line 4: http.auth: "none" is not an auth mode (want public, key, jwt or internal)`},
	{"method_bad.yaml", `line 4: http.methods[1]: "get" is not a method`},
	{"method_trace.yaml", `line 5: http.methods[0]: "TRACE" is not a method`},
	{"method_dup.yaml", `line 7: http.methods[2]: duplicate "POST" (first on line 5)`},
	{"method_null.yaml", `line 5: http.methods[0]: no value`},
	{"content_type_bad.yaml", `line 4: input.content_types[0]: "json" is not a media type`},
	{"bucket_bad.yaml", `line 4: permissions.kv: "Contacts" is not a valid bucket name`},
	{"access_bad.yaml", `line 5: permissions.kv.contacts: "admin" is not an access mode (want read, write or read-write)`},
	{"access_null.yaml", `line 5: permissions.kv.contacts: no value`},
	{"objects_bad.yaml", `line 5: permissions.objects.uploads: "list" is not an access mode (want read, write or read-write)`},
	{"secret_bad.yaml", `line 4: permissions.secrets[0]: "mailer-key" is not a valid secret name`},
	{"secret_dup.yaml", `line 4: permissions.secrets[2]: duplicate "A" (first on line 4)`},
	{"egress_wildcard.yaml", `line 4: permissions.egress[0]: "https://*.example.net/" has a wildcard in the host`},
	{"egress_userinfo.yaml", `contains a user name or password`},
	{"egress_query.yaml", `line 4: permissions.egress[0]: "https://mail.example.net/v3/?key=1" has a query or fragment`},
	{"egress_fragment.yaml", `line 4: permissions.egress[0]: "https://mail.example.net/v3/#top" has a query or fragment`},
	{"egress_ftp.yaml", `line 4: permissions.egress[0]: "ftp://files.example.net/": scheme must be https or http`},
	{"egress_no_slash.yaml", `line 4: permissions.egress[0]: "https://mail.example.net/v3": path must end with /`},
	{"egress_no_host.yaml", `line 4: permissions.egress[0]: "https:///v3/" has no host`},
	{"egress_relative.yaml", `line 4: permissions.egress[0]: "mail.example.net/v3/": scheme must be https or http`},
	{"invoke_bad.yaml", `line 4: permissions.invoke[0]: "Render_PDF" is not a valid function name`},
	{"invoke_dup.yaml", `line 6: permissions.invoke[1]: duplicate "render-pdf" (first on line 5)`},
	{"env_cgi.yaml", `line 4: env: "REQUEST_METHOD" is a CGI variable the gateway sets`},
	{"env_http.yaml", `line 4: env: "HTTP_AUTHORIZATION": names starting HTTP_ are reserved`},
	{"env_moat.yaml", `line 4: env: "MOAT_TOKEN": names starting MOAT_ are reserved`},
	{"env_key_lower.yaml", `line 4: env: "catalog_title" is not a valid variable name`},
	{"env_key_digit.yaml", `line 4: env: "1ST" is not a valid variable name`},
	{"env_value_null.yaml", `line 4: env.TITLE: no value (write "" for an empty string`},
	{"env_value_list.yaml", `line 4: env.TITLES: want a string, found a list`},
	{"env_value_nul.yaml", `line 4: env.TITLE: value contains a NUL byte`},
	{"env_value_too_long.yaml", `line 4: env.TITLE: value is 4097 bytes, more than 4096`},
	{"env_too_many.yaml", `line 4: env: 65 variables, more than 64`},
	{"alias.yaml", `line 5: alias *mem: aliases are not allowed`},
	{"alias_merge.yaml", `line 5: alias *base: aliases are not allowed`},
	{"billion_laughs.yaml", `line 4: alias *a: aliases are not allowed`},
	{"tag_custom.yaml", `line 4: tag !secret is not allowed`},
	{"tag_binary.yaml", `line 3: tag !!binary is not allowed`},
	{"two_documents.yaml", `line 3: a second document starts here`},
	{"empty.yaml", `empty manifest`},
	{"comments_only.yaml", `empty manifest`},
	{"null_document.yaml", `empty manifest`},
	{"not_mapping.yaml", `line 1: want a mapping of fields, found a list`},
	{"scalar_document.yaml", `line 1: want a mapping of fields, found "hello"`},
	{"tabs.yaml", `line 4: invalid YAML:`},
	{"tabs_first_line.yaml", `line 1: invalid YAML: found character that cannot start any token (indent with spaces, not tabs)`},
	{"garbage.yaml", `line 3: invalid YAML: did not find expected ',' or '}'`},
	{"garbage_binary.yaml", `line 3: invalid YAML: control characters are not allowed`},
	{"garbage_utf8.yaml", `line 3: invalid YAML: invalid leading UTF-8 octet`},
	{"garbage_indent.yaml", `line 5: invalid YAML: mapping values are not allowed in this context`},
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkGolden compares m, as indented JSON, with testdata/name; with
// -update it rewrites the file instead.
func checkGolden(tb testing.TB, name string, m *Manifest) {
	tb.Helper()
	got, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		tb.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs (run go test -update and review the diff)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(readTestdata(t, tt.file))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Parse(%s): %v", tt.file, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Parse(%s) error = %v, want %q", tt.file, err, tt.wantErr)
			case err != nil:
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Parse(%s) error is %T, want *Error", tt.file, err)
				}
				if e.File != "" {
					t.Errorf("Parse(%s) error File = %q, want empty", tt.file, e.File)
				}
			default:
				if err := m.Validate(); err != nil {
					t.Errorf("Validate() after Parse(%s) = %v", tt.file, err)
				}
				checkGolden(t, tt.file+".golden", m)
			}
		})
	}
}

// TestParseTestsCoverTestdata keeps parseTests and testdata in step.
func TestParseTestsCoverTestdata(t *testing.T) {
	listed := make(map[string]bool)
	for _, tt := range parseTests {
		if listed[tt.file] {
			t.Errorf("%s is listed twice", tt.file)
		}
		listed[tt.file] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not in parseTests", f)
		}
		delete(listed, filepath.Base(f))
	}
	for f := range listed {
		t.Errorf("parseTests lists %s, which is not in testdata", f)
	}
	goldens, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden")); err != nil {
			t.Errorf("%s has no input: %v", g, err)
		}
	}
}

func TestParseTooLarge(t *testing.T) {
	src := []byte("name: fn\nmodule: fn.wasm\nowner: " + strings.Repeat("x", 64<<10) + "\n")
	_, err := Parse(src)
	want := fmt.Sprintf("manifest is %d bytes, more than the limit of 65536", len(src))
	if err == nil || err.Error() != want {
		t.Fatalf("Parse(%d bytes) error = %v, want %q", len(src), err, want)
	}
}

func TestParseDefaults(t *testing.T) {
	m, err := Parse(readTestdata(t, "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Name:   "hello",
		Module: "hello.wasm",
		Limits: Limits{Memory: 64 * MiB, Timeout: 10 * time.Second, Concurrency: 10, Body: MiB, Response: 6 * MiB},
		HTTP:   HTTP{Auth: "key"},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse(minimal.yaml) = %+v, want %+v", m, want)
	}
}

func TestError(t *testing.T) {
	inner := errors.New("bad")
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "moat.yaml", Line: 7, Field: "limits.memory", Err: inner}, "moat.yaml:7: limits.memory: bad"},
		{&Error{Line: 7, Field: "limits.memory", Err: inner}, "line 7: limits.memory: bad"},
		{&Error{File: "moat.yaml", Field: "name", Err: inner}, "moat.yaml: name: bad"},
		{&Error{Field: "name", Err: inner}, "name: bad"},
		{&Error{Line: 3, Err: inner}, "line 3: bad"},
		{&Error{}, "invalid"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
		if tt.err.Err != nil && !errors.Is(tt.err, inner) {
			t.Errorf("errors.Is(%q, inner) = false", tt.err)
		}
	}
}

// valid returns a Manifest that passes Validate, for tests to spoil.
func valid(tb testing.TB) *Manifest {
	tb.Helper()
	m, err := Parse(readTestdata(tb, "full.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		spoil   func(m *Manifest)
		wantErr string // "" means valid
	}{
		{"full", func(m *Manifest) {}, ""},
		{"zero rates and budgets", func(m *Manifest) { m.Limits.Rate, m.Budget = Rate{}, Budget{} }, ""},
		{"zero value", func(m *Manifest) { *m = Manifest{} }, "name: required field is missing"},
		{"name", func(m *Manifest) { m.Name = "-a" }, `name: "-a" is not a valid function name`},
		{"module missing", func(m *Manifest) { m.Module = "" }, "module: required field is missing"},
		{"module escapes", func(m *Manifest) { m.Module = "../a.wasm" }, `module: "../a.wasm" contains ".."`},
		{"owner", func(m *Manifest) { m.Owner = "a\nb" }, "owner: \"a\\nb\" contains a control character"},
		{"owner utf8", func(m *Manifest) { m.Owner = "\xff" }, `owner: "\xff" is not valid UTF-8`},
		{"env key", func(m *Manifest) { m.Env["PATH_INFO"] = "x" }, `env: "PATH_INFO" is a CGI variable`},
		{"env value", func(m *Manifest) { m.Env["A"] = "\x00" }, "env.A: value contains a NUL byte"},
		{"env count", func(m *Manifest) {
			for i := range 64 {
				m.Env[strings.Repeat("A", i+1)] = ""
			}
		}, "env: 65 variables, more than 64"},
		{"memory", func(m *Manifest) { m.Limits.Memory = 0 }, "limits.memory: 0B is not between 1MiB and 4GiB"},
		{"memory page", func(m *Manifest) { m.Limits.Memory = MiB + KiB }, "limits.memory: 1025KiB is not a multiple of 64KiB"},
		{"javascript memory", func(m *Manifest) { m.Module, m.Limits.Memory = "dist/index.js", 24*MiB }, "limits.memory: a JavaScript function needs at least 32MiB"},
		{"javascript memory enough", func(m *Manifest) { m.Module, m.Limits.Memory = "dist/index.js", 32*MiB }, ""},
		{"timeout", func(m *Manifest) { m.Limits.Timeout = 0 }, "limits.timeout: 0s is not positive"},
		{"concurrency", func(m *Manifest) { m.Limits.Concurrency = 10001 }, "limits.concurrency: 10001 is not between 1 and 10000"},
		{"rate count", func(m *Manifest) { m.Limits.Rate = Rate{N: -1, Per: time.Second} }, `limits.rate: "-1/s": the count must be positive`},
		{"rate period", func(m *Manifest) { m.Limits.RatePerCaller = Rate{N: 1, Per: time.Millisecond} }, `limits.rate_per_caller: "1/1ms": the period must be s, m or h`},
		{"body", func(m *Manifest) { m.Limits.Body = -1 }, "limits.body: -1B is not between 0B and 64MiB"},
		{"response", func(m *Manifest) { m.Limits.Response = 0 }, "limits.response: 0B is not between 1KiB and 64MiB"},
		{"budget window", func(m *Manifest) { m.Budget.GBSeconds.Window = "week" }, `budget.gb_seconds: "100/week": the window must be`},
		{"budget whole", func(m *Manifest) { m.Budget.Invocations.Amount = 0.5 }, `budget.invocations: "0.5/day": the amount must be a whole number`},
		{"auth", func(m *Manifest) { m.HTTP.Auth = "" }, `http.auth: "" is not an auth mode`},
		{"method", func(m *Manifest) { m.HTTP.Methods = []string{"post"} }, `http.methods[0]: "post" is not a method`},
		{"method dup", func(m *Manifest) { m.HTTP.Methods = []string{"GET", "GET"} }, `http.methods[1]: duplicate "GET" (also http.methods[0])`},
		{"schema", func(m *Manifest) { m.Input.Schema = "/s.json" }, `input.schema: "/s.json" is absolute`},
		{"content type", func(m *Manifest) { m.Input.ContentTypes = []string{"text"} }, `input.content_types[0]: "text" is not a media type`},
		{"bucket", func(m *Manifest) { m.Permissions.KV["A"] = "read" }, `permissions.kv: "A" is not a valid bucket name`},
		{"access", func(m *Manifest) { m.Permissions.KV["contacts"] = "all" }, `permissions.kv.contacts: "all" is not an access mode`},
		{"object bucket", func(m *Manifest) { m.Permissions.Objects = map[string]string{"../up": "read"} }, `permissions.objects: "../up" is not a valid bucket name`},
		{"object access", func(m *Manifest) { m.Permissions.Objects = map[string]string{"uploads": "delete"} }, `permissions.objects.uploads: "delete" is not an access mode`},
		{"secret", func(m *Manifest) { m.Permissions.Secrets = []string{"_A"} }, `permissions.secrets[0]: "_A" is not a valid secret name`},
		{"egress", func(m *Manifest) { m.Permissions.Egress = []string{"https://a.example/x"} }, `permissions.egress[0]: "https://a.example/x": path must end with /`},
		{"invoke", func(m *Manifest) { m.Permissions.Invoke = []string{"a", "a"} }, `permissions.invoke[1]: duplicate "a"`},
		{"sbom", func(m *Manifest) { m.SBOM = "a/../../b" }, `sbom: "a/../../b" contains ".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid(t)
			tt.spoil(m)
			err := m.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Line != 0) {
				t.Errorf("Validate() = %#v, want an *Error without a line", err)
			}
		})
	}
	var nilManifest *Manifest
	if err := nilManifest.Validate(); err == nil {
		t.Error("(*Manifest)(nil).Validate() = nil, want an error")
	}
}

func TestAllowsMethod(t *testing.T) {
	tests := []struct {
		methods []string
		method  string
		want    bool
	}{
		{nil, "GET", true},
		{nil, "OPTIONS", true},
		{nil, "TRACE", false},
		{nil, "CONNECT", false},
		{nil, "get", false},
		{[]string{"POST"}, "POST", true},
		{[]string{"POST"}, "GET", false},
		{[]string{"GET", "HEAD"}, "HEAD", true},
	}
	for _, tt := range tests {
		m := &Manifest{HTTP: HTTP{Methods: tt.methods}}
		if got := m.AllowsMethod(tt.method); got != tt.want {
			t.Errorf("Manifest{Methods: %q}.AllowsMethod(%q) = %v, want %v", tt.methods, tt.method, got, tt.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, tt := range parseTests {
		if tt.wantErr != "" {
			continue
		}
		m, err := Parse(readTestdata(t, tt.file))
		if err != nil {
			t.Fatalf("Parse(%s): %v", tt.file, err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", tt.file, err)
		}
		var got Manifest
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(&got, m) {
			t.Errorf("%s: JSON round trip = %+v, want %+v", tt.file, got, m)
		}
	}
}

func TestSupplyChainFields(t *testing.T) {
	m, err := Parse([]byte("name: f\nmodule: f.wasm\nsbom: app.cdx.json\nlockfiles: [web/package-lock.json, go.sum]\nvulnerabilities: {block: medium}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Files(); strings.Join(got, ",") != "f.wasm,app.cdx.json,web/package-lock.json,go.sum" || m.Vulnerabilities.Block != "medium" {
		t.Fatalf("Files() = %q, policy %+v", got, m.Vulnerabilities)
	}
	for src, want := range map[string]string{
		"name: f\nmodule: f.wasm\nlockfiles: [yarn.lock]\n":                `line 3: lockfiles[0]: "yarn.lock" is not a lock file Moat reads`,
		"name: f\nmodule: f.wasm\nlockfiles: [../go.sum]\n":                `line 3: lockfiles[0]: "../go.sum" contains ".."`,
		"name: f\nmodule: f.wasm\nlockfiles: [go.sum, go.sum]\n":           `duplicate "go.sum"`,
		"name: f\nmodule: f.wasm\nvulnerabilities: {block: severe}\n":      `vulnerabilities.block: "severe" is not a severity`,
		"name: f\nmodule: f.wasm\nvulnerabilities: {warn: low}\n":          `unknown field "warn"`,
		"name: f\nmodule: f.wasm\nvulnerabilities: {block: [high, low]}\n": `vulnerabilities.block`,
	} {
		_, err := Parse([]byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", src, err, want)
		}
	}
}
