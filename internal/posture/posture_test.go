package posture

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/testwasm"
)

func parse(t *testing.T, src string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checks(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Check)
	}
	slices.Sort(out)
	return out
}

func TestChecks(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	recent := now.Add(-time.Hour)
	old := now.Add(-60 * 24 * time.Hour)
	// A clean function: owned, signed, bounded, validated, every grant used.
	clean := Function{Name: "contact", Deployed: old, LastInvoked: recent, SignedBy: "k1",
		Manifest: parse(t, "name: contact\nmodule: c.wasm\nowner: web\nhttp: {auth: public, methods: [POST]}\ninput: {schema: s.json}\nlimits: {rate_per_caller: 2/s}\nbudget: {invocations: 100/day}\npermissions: {kv: {contacts: write}}\n"),
		Grants:   []Grant{{Grant: "kv:contacts:write", LastUsed: &recent}}}
	if got := Check(clean, Options{Now: now}); len(got) != 0 {
		t.Fatalf("the clean function: %+v", got)
	}
	for name, c := range map[string]struct {
		f    func(f *Function)
		want []string
	}{
		"dormant": {func(f *Function) { f.LastInvoked = old.Add(time.Hour); f.Grants[0].LastUsed = &old }, []string{"dormant", "unused-grants"}},
		"unused grant": {func(f *Function) {
			f.Manifest.Permissions.Secrets = []string{"MAILER_KEY"}
			f.Grants = append(f.Grants, Grant{Grant: "secret:MAILER_KEY"})
		}, []string{"unused-grants"}},
		"unused publish grant": {func(f *Function) {
			f.Manifest.Permissions.Publish = []string{"orders.>"}
			f.Grants = append(f.Grants, Grant{Grant: "publish:orders.>"})
		}, []string{"unused-grants"}},
		"current toolchain":        {func(f *Function) { f.GoVersion = "go1.26.8" }, nil},
		"older patch":              {func(f *Function) { f.GoVersion = "go1.26.2" }, []string{"toolchain-outdated"}},
		"unsupported minor":        {func(f *Function) { f.GoVersion = "go1.24.9" }, []string{"toolchain-outdated"}},
		"a newer toolchain":        {func(f *Function) { f.GoVersion = "go1.27.0" }, nil},
		"not Go":                   {func(f *Function) { f.GoVersion = "" }, nil},
		"secret in module":         {func(f *Function) { f.ModuleSecrets = []string{"an AWS access key id at data offset 0x10"} }, []string{"secret-in-module"}},
		"public without schema":    {func(f *Function) { f.Manifest.Input.Schema = "" }, []string{"public-no-schema"}},
		"GET only needs no schema": {func(f *Function) { f.Manifest.Input.Schema = ""; f.Manifest.HTTP.Methods = []string{"GET"} }, nil},
		"public unbounded": {func(f *Function) {
			f.Manifest.Limits.RatePerCaller = manifest.Rate{}
			f.Manifest.Budget = manifest.Budget{}
		}, []string{"public-unbounded"}},
		"egress http":    {func(f *Function) { f.Manifest.Permissions.Egress = []string{"http://mail.example.net/"} }, []string{"egress-risky"}},
		"egress private": {func(f *Function) { f.Manifest.Permissions.Egress = []string{"https://10.0.0.7/api/"} }, []string{"egress-risky"}},
		"egress public":  {func(f *Function) { f.Manifest.Permissions.Egress = []string{"https://mail.example.net/v3/"} }, nil},
		"aws key in env": {func(f *Function) { f.Manifest.Env = map[string]string{"AWS_ID": "AKIAIOSFODNN7EXAMPLE"} }, []string{"secret-in-env"}},
		"random in env":  {func(f *Function) { f.Manifest.Env = map[string]string{"TOKEN": "q8Zt3LmX9vR2pWk7Yb4Nc6Hd1Jf5Gs0A"} }, []string{"secret-in-env"}},
		"plain env": {func(f *Function) {
			f.Manifest.Env = map[string]string{"CATALOG_TITLE": "Widgets of every colour and size"}
		}, nil},
		"vulnerable":        {func(f *Function) { f.Vulnerable = []string{"GO-2022-1059"} }, []string{"vulnerable"}},
		"unsigned":          {func(f *Function) { f.SignedBy = "" }, []string{"unsigned"}},
		"unsigned required": {func(f *Function) { f.SignedBy = ""; f.SignaturesReq = true }, nil},
		"no owner":          {func(f *Function) { f.Manifest.Owner = " " }, []string{"no-owner"}},
		"dead letters":      {func(f *Function) { f.DeadLetters = 3 }, []string{"dead-letters"}},
		"internal, no callers": {func(f *Function) {
			f.Manifest.HTTP.Auth = "internal"
			f.Manifest.HTTP.Callers = nil
		}, []string{"unreachable"}},
		"internal, callers that cannot call": {func(f *Function) {
			f.Manifest.HTTP.Auth = "internal"
			f.Manifest.HTTP.Callers = []string{"form"}
		}, []string{"unreachable"}},
		"internal, called": {func(f *Function) {
			f.Manifest.HTTP.Auth = "internal"
			f.Manifest.HTTP.Callers = []string{"form"}
			f.CalledBy = []string{"form"}
		}, nil},
	} {
		f := clean
		m := *clean.Manifest
		f.Manifest = &m
		f.Grants = slices.Clone(clean.Grants)
		c.f(&f)
		got := checks(Check(f, Options{Now: now, Toolchains: []string{"go1.26.8", "go1.25.3", "go1.27rc1", "devel +abc"}}))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

func TestToolchainCheck(t *testing.T) {
	for _, c := range []struct {
		built string
		known []string
		sev   string
		names string
	}{
		{"go1.26.8", []string{"go1.26.8"}, "", ""},
		{"go1.26.1", []string{"go1.26.8", "go1.25.9"}, Medium, "go1.26.8"},
		{"go1.25.1", []string{"go1.26.8", "go1.25.9"}, Medium, "go1.25.9"},
		{"go1.24.12", []string{"go1.26.0"}, High, "go1.26.0"},
		{"go1.21", []string{"go1.21.3"}, Medium, "go1.21.3"},
		{"go1.26.8", []string{"go1.26.9-custom", "go2", ""}, "", ""},
		{"go1.27rc1", []string{"go1.29.0"}, "", ""},
	} {
		sev, ev, fix := toolchainCheck(c.built, c.known)
		if sev != c.sev || c.names != "" && (!strings.Contains(ev, c.names) || !strings.Contains(fix, c.names)) {
			t.Errorf("%s against %v: %s %q %q", c.built, c.known, sev, ev, fix)
		}
	}
}

func TestSecretsAreNeverShown(t *testing.T) {
	now := time.Now()
	const value = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
	f := Function{Name: "x", Deployed: now, Manifest: parse(t, "name: x\nmodule: x.wasm\nowner: o\nenv: {GH: "+value+"}\n"), SignedBy: "k"}
	fs := Check(f, Options{Now: now})
	if len(fs) != 1 || fs[0].Check != "secret-in-env" || !strings.Contains(fs[0].Evidence, "a GitHub token") {
		t.Fatalf("%+v", fs)
	}
	for _, fd := range fs {
		if strings.Contains(fd.Evidence+fd.Fix, value) || strings.Contains(fd.Evidence+fd.Fix, value[:12]) {
			t.Fatalf("the value is shown: %+v", fd)
		}
	}
}

func FuzzSecretLooking(f *testing.F) {
	f.Add("AKIAIOSFODNN7EXAMPLE")
	f.Add("postgres://u:p@db/x")
	f.Fuzz(func(t *testing.T, v string) { secretLooking(v) })
}

// wasmWithData is a WebAssembly module whose one data segment holds data.
func wasmWithData(data string) []byte {
	leb := func(n int) []byte {
		var b []byte
		for {
			c := byte(n & 0x7f)
			n >>= 7
			if n != 0 {
				b = append(b, c|0x80)
				continue
			}
			return append(b, c)
		}
	}
	seg := append([]byte{1, 0, 0x41}, leb(1024)...) // one segment, active, i32.const 1024
	seg = append(seg, 0x0b)
	seg = append(append(seg, leb(len(data))...), data...)
	mod := []byte("\x00asm\x01\x00\x00\x00\x0b")
	return append(append(mod, leb(len(seg))...), seg...)
}

func TestModuleSecrets(t *testing.T) {
	const aws, gh = "AKIAIOSFODNN7EXAMPLE", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
	for _, c := range []struct {
		data string
		want string // "" for none
	}{
		{"\x00\x00config:" + aws + "\x00", "an AWS access key id"},
		{"Authorization: Bearer q8Zt3LmX9vR2pWk7Yb4Nc6Hd1Jf5Gs0A", "labelled as a secret"},
		{`{"api_key": "7f3kQ9zLm2Xv8RtY6wPb4NcJ"}`, "labelled as a secret"},
		{"https://user:hunter2@db.internal/app", "a URL with a password"},
		{"SunMonTueWedThuFriSatJanFebMarAprMayJunJulAugSepOctNovDec", ""},
		{"token: not-a-secret-just-words-here", ""},
		{"password=changeme", ""},
		{"h1:1QivrlhwAsnMOcqgOdl9my7s9OyZl8O5/UGUTJVXoWc=", ""},
	} {
		got := ModuleSecrets(wasmWithData(c.data))
		switch {
		case c.want == "" && len(got) > 0, c.want != "" && (len(got) != 1 || !strings.Contains(got[0], c.want)):
			t.Errorf("%q: %v, want %q", c.data, got, c.want)
		}
		for _, g := range got {
			if strings.Contains(g, aws) || strings.Contains(g, "q8Zt3") || strings.Contains(g, "hunter2") || strings.Contains(g, gh[:10]) {
				t.Errorf("the value is shown: %s", g)
			}
		}
	}
	// Real Go modules hold no such string, whatever their tables look like.
	for _, name := range []string{"kitchen", "caps", "reactor"} {
		if got := ModuleSecrets(testwasm.Bytes(t, name)); len(got) != 0 {
			t.Errorf("%s: %v", name, got)
		}
	}
	if got := ModuleSecrets([]byte("not wasm " + aws)); got != nil {
		t.Errorf("not a module: %v", got)
	}
}

func FuzzModuleSecrets(f *testing.F) {
	f.Add(wasmWithData("api_key=7f3kQ9zLm2Xv8RtY6wPb4NcJ " + "AKIAIOSFODNN7EXAMPLE"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := ModuleSecrets(b); len(got) > maxModuleSecrets {
			t.Fatalf("%d findings", len(got))
		}
	})
}
