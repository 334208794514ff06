package inventory

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
)

func TestParseLockFile(t *testing.T) {
	for _, file := range []string{
		"lock/npm-v1/package-lock.json",
		"lock/npm-v2/package-lock.json",
		"lock/npm-v3/package-lock.json",
		"lock/cargo/Cargo.lock",
		"lock/poetry/poetry.lock",
		"lock/pip/requirements.txt",
		"lock/gosum/go.sum",
		"vulnerable/go.sum",
	} {
		t.Run(file, func(t *testing.T) {
			cs, err := ParseLockFile(path.Base(file), readTestdata(t, file))
			if err != nil {
				t.Fatalf("ParseLockFile(%s): %v", file, err)
			}
			checkSorted(t, cs)
			golden := file + ".golden"
			if strings.HasPrefix(file, "vulnerable/") {
				golden = "lock/vulnerable-go.sum.golden"
			}
			checkGolden(t, golden, render(cs))
		})
	}
}

func TestParseLockFileNames(t *testing.T) {
	const lock = `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.0.0"}}}`
	for _, name := range []string{"package-lock.json", "web/package-lock.json", `web\package-lock.json`, "npm-shrinkwrap.json"} {
		cs, err := ParseLockFile(name, []byte(lock))
		if err != nil || len(cs) != 1 || cs[0].Source != "lockfile:"+name {
			t.Errorf("ParseLockFile(%q) = %+v, %v; want a@1.0.0 from lockfile:%s", name, cs, err, name)
		}
	}
	for _, name := range []string{"requirements-dev.txt", "requirements.txt"} {
		if cs, err := ParseLockFile(name, []byte("six==1.16.0\n")); err != nil || len(cs) != 1 {
			t.Errorf("ParseLockFile(%q) = %+v, %v; want six 1.16.0", name, cs, err)
		}
	}
	for _, name := range []string{"package.json", "yarn.lock", "Pipfile.lock", "go.mod", "cargo.lock", "", "."} {
		if _, err := ParseLockFile(name, []byte("{}")); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ParseLockFile(%q) error = %v, want ErrUnsupported", name, err)
		}
	}
}

func TestParseLockFileRefused(t *testing.T) {
	npmMany := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"lockfileVersion":3,"packages":{`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"node_modules/p%d":{"version":"1.0.0"}`, i)
		}
		b.WriteString("}}")
		return b.String()
	}
	npmDeep := func(n int) string {
		return `{"lockfileVersion":1,"dependencies":` + strings.Repeat(`{"a":{"version":"1.0.0","dependencies":`, n) +
			"{}" + strings.Repeat("}}", n) + "}"
	}
	tests := []struct {
		file, doc string
		want      error
		msg       string
	}{
		{"package-lock.json", "not json", ErrMalformed, "package-lock.json:1: malformed: invalid character"},
		{"package-lock.json", `{"lockfileVersion":3,"packages":[]}`, ErrMalformed, "packages: want an object, found an array"},
		{"package-lock.json", "{\"lockfileVersion\":3,\n\"packages\":{\n\"node_modules/a\":{\"version\":1}}}", ErrMalformed, `package-lock.json:3: malformed: packages["node_modules/a"].version: want a string, found a number`},
		{"package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/a":{"link":"yes"}}}`, ErrMalformed, "want a boolean"},
		{"package-lock.json", `{"name":"x","version":"1.0.0"}`, ErrMalformed, "no lockfileVersion"},
		{"package-lock.json", `{"lockfileVersion":4,"packages":{}}`, ErrUnsupported, "lockfileVersion 4"},
		{"package-lock.json", `{"lockfileVersion":3} trailing`, ErrMalformed, "after the JSON"},
		{"package-lock.json", npmMany(MaxComponents + 1), ErrTooLarge, "more than 100000 components"},
		{"package-lock.json", npmDeep(100), ErrTooLarge, "nested deeper"},
		{"package-lock.json", `{"lockfileVersion":3,"x":"` + strings.Repeat("y", MaxFileSize) + `"}`, ErrTooLarge, "bytes"},
		{"Cargo.lock", "version = 3\n\n[[package]]\nname = \"serde\"\nversion = 1.0\n", ErrMalformed, "Cargo.lock:5: malformed: package.version: incompatible types"},
		{"Cargo.lock", "[[package]]\nname = \"serde\n", ErrMalformed, "Cargo.lock:2: malformed"},
		{"Cargo.lock", "[package]\nname = \"serde\"\n", ErrMalformed, "malformed"},
		{"Cargo.lock", "[[package]]\nname = \"serde\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n", ErrMalformed, "package[0]: want a name and a version"},
		{"Cargo.lock", "a = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n", ErrTooLarge, "Cargo.lock:1: too large: TOML nested deeper than 32"},
		{"Cargo.lock", "a = [" + strings.Repeat("1,", maxTOMLItems) + "]\n", ErrTooLarge, "TOML keys, tables and values"},
		{"poetry.lock", "[[package]]\nname = \"x\"\nversion = \"1\"\n[[package]]\nname = \"x\"\nversion = \"1\"\nname = \"y\"\n", ErrMalformed, "poetry.lock:7: malformed"},
		{"poetry.lock", "[[package]]\nname = \"requests\"\n", ErrMalformed, "package[0]"},
		{"go.sum", "golang.org/x/text v0.3.5 h1:abc=\ngolang.org/x/text v0.3.5\n", ErrMalformed, `go.sum:2: malformed: want "module version hash", found 2 fields`},
		{"go.sum", "golang.org/x/text 0.3.5 h1:abc=\n", ErrMalformed, `go.sum:1: malformed: version "0.3.5" does not start with v`},
		{"requirements.txt", "six==1.16.0\n\x00\x01binary", ErrMalformed, "requirements.txt:2: malformed: NUL byte"},
	}
	for _, tt := range tests {
		name := tt.file + ": " + tt.msg
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			cs, err := ParseLockFile(tt.file, []byte(tt.doc))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseLockFile(%s) = %d components, %v; want an error wrapping %v", tt.file, len(cs), err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != tt.file {
				t.Errorf("ParseLockFile(%s) error = %#v, want an *Error naming the file", tt.file, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseLockFile(%s) error = %q, want it to say %q", tt.file, err, tt.msg)
			}
		})
	}
}

func TestRequirementLines(t *testing.T) {
	tests := []struct{ line, name, version string }{ // name "" means ignored
		{"Django==3.2.4", "Django", "3.2.4"},
		{"django == 3.2.4", "django", "3.2.4"},
		{"requests[security]==2.25.1", "requests", "2.25.1"},
		{"requests [security, socks] == 2.25.1 ; python_version>'3'", "requests", "2.25.1"},
		{"zope.interface===5.4.0", "zope.interface", "5.4.0"},
		{"torch==2.1.0+cpu", "torch", "2.1.0+cpu"},
		{"epoch==1!2.0", "epoch", "1!2.0"},
		{"six==1.16.0 --hash=sha256:abc --hash=sha256:def", "six", "1.16.0"},
		{"six==1.16.0 # comment", "six", "1.16.0"},
		{"six==1.16.0#egg", "", ""}, // not a comment without white space before it
		{"six>=1.16.0", "", ""},
		{"six~=1.16", "", ""},
		{"six!=1.16.0", "", ""},
		{"six==1.*", "", ""},
		{"six==1.16.0,<2", "", ""},
		{"six", "", ""},
		{"six==", "", ""},
		{"# six==1.16.0", "", ""},
		{"--hash=sha256:abc", "", ""},
		{"-e .", "", ""},
		{"./wheels/six-1.16.0-py2.py3-none-any.whl", "", ""},
		{"six @ https://example.com/six-1.16.0.tar.gz", "", ""},
		{"_private==1.0", "", ""},
		{"https://example.com/six.tar.gz#egg=six==1.0", "", ""},
	}
	for _, tt := range tests {
		c := &collector{file: "requirements.txt", source: "lockfile:requirements.txt"}
		if err := requirement(c, tt.line); err != nil {
			t.Fatal(err)
		}
		var got []Component
		if tt.name != "" {
			got = []Component{{Ecosystem: "PyPI", Name: tt.name, Version: tt.version, Source: c.source}}
		}
		if fmt.Sprint(c.out) != fmt.Sprint(got) {
			t.Errorf("requirement(%q) = %+v, want %+v", tt.line, c.out, got)
		}
	}
}

func TestNPMVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3": "1.2.3", "v1.2.3": "1.2.3", "0.0.0": "0.0.0", "1.2.3-alpha.1": "1.2.3-alpha.1", "1.2.3-0": "1.2.3-0",
		"1.2.3+build.5": "1.2.3+build.5", "1.2.3-x-y-z.--": "1.2.3-x-y-z.--", "1.2.3-0a": "1.2.3-0a",
		"9007199254740991.0.0": "9007199254740991.0.0",
	} {
		if got, ok := NPMVersion(in); !ok || got != want {
			t.Errorf("NPMVersion(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "=1.2.3", "v 1.2.3", " 1.2.3", "1.2.3 ",
		"1.2.3-01", "1.2.3-", "1.2.3+", "1.2.3-a..b", "latest", "^1.2.3", "1.x", "vv1.2.3", "V1.2.3",
		"9007199254740992.0.0", "1.2.3-" + strings.Repeat("a", 260), "1.2.3\n",
	} {
		if got, ok := NPMVersion(in); ok {
			t.Errorf("NPMVersion(%q) = %q, accepted", in, got)
		}
	}
}

func TestNPMLockVersionsAreStrict(t *testing.T) {
	lock := func(version string) []byte {
		return []byte(`{"lockfileVersion": 3, "packages": {"": {"name": "app"}, "node_modules/lodash": {"version": "` + version + `"}}}`)
	}
	if _, err := ParseLockFile("package-lock.json", lock("1.0")); err == nil || !strings.Contains(err.Error(), `lodash: version "1.0" is not one npm installs`) {
		t.Errorf("a loose version: %v", err)
	}
	cs, err := ParseLockFile("package-lock.json", lock("v4.17.21"))
	if err != nil || len(cs) != 1 || cs[0].Version != "4.17.21" {
		t.Errorf("v4.17.21: %v %+v", err, cs)
	}
	cs, err = ParseLockFile("package-lock.json", lock("git+https://github.com/lodash/lodash.git#abc"))
	if err != nil || len(cs) != 1 {
		t.Errorf("a git dependency: %v %+v", err, cs)
	}
}
