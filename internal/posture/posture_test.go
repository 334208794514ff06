package posture

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/manifest"
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
		got := checks(Check(f, Options{Now: now}))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
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
