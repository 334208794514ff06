package node

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/api"
	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/client"
	"github.com/moatfn/moat/internal/supply"
	"github.com/moatfn/moat/internal/testwasm"
)

// guest builds a test guest of internal/inventory/testdata.
func inventoryGuest(t *testing.T, name string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := testwasm.BuildDir(t, filepath.Join(filepath.Dir(file), "..", "inventory", "testdata", name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func osvFile(t *testing.T, rel string) *os.File {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "vulndb", "testdata", "osv", rel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type importResult struct {
	Status struct {
		Total  int            `json:"total"`
		Counts map[string]int `json:"counts"`
	} `json:"status"`
	Found    []FunctionReport `json:"new_findings"`
	Disabled []string         `json:"disabled"`
}

const xtextManifest = "name: langs\nmodule: fn.wasm\nhttp: {auth: public}\n"

// The advisories in testdata/osv that affect x/text v0.3.5, all with a fix
// (GO-2020-0015 was fixed in v0.3.3, before it).
var xtextAdvisories = []string{"GO-2021-0113", "GO-2022-1059", "GO-2026-5970"}

func TestVulnerableDeployBlocked(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx := context.Background()
	var res importResult
	if err := n.client.ImportVulnDB(ctx, osvFile(t, "Go/all.zip"), &res); err != nil {
		t.Fatal(err)
	}
	if res.Status.Counts["Go"] != 43 {
		t.Fatalf("import: %+v", res.Status)
	}
	vulnerable := inventoryGuest(t, "vulnerable")

	_, err := n.client.Deploy(ctx, bundleOf(t, xtextManifest, vulnerable))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Fatalf("deploy of a vulnerable module: %v", err)
	}
	for _, want := range append([]string{"golang.org/x/text v0.3.5", "move to v0.3.7 or later", "blocked", "CVE-2021-38561"}, xtextAdvisories...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %q:\n%v", want, err)
		}
	}
	// The fixed build deploys.
	deploy(t, n, xtextManifest, inventoryGuest(t, "fixed"))

	// Exceptions for each advisory let the vulnerable build through, as
	// allowed findings; the trail has them.
	for _, id := range xtextAdvisories {
		if _, err := n.client.AllowVuln(ctx, api.ExceptionRequest{ID: id, Function: "langs", Until: time.Now().Add(48 * time.Hour).Format(time.RFC3339), Reason: "tags come from our own list"}); err != nil {
			t.Fatal(err)
		}
	}
	deploy(t, n, xtextManifest, vulnerable)
	var list []FunctionReport
	if err := n.client.Vulns(ctx, &list); err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for _, f := range list[0].Findings {
		if f.Decision == supply.Allowed && f.Exception != nil {
			allowed++
		}
		if f.Decision == supply.Block {
			t.Errorf("a blocking finding was deployed: %+v", f)
		}
	}
	if allowed != len(xtextAdvisories) {
		t.Fatalf("%d allowed findings, want %d: %+v", allowed, len(xtextAdvisories), list)
	}
	if recs := records(t, n, url.Values{"action": {"vuln.allow"}}, 3); len(recs) != 3 || recs[0].Actor != "admin" || recs[0].Resource == "" {
		t.Fatalf("vuln.allow records: %+v", recs)
	}

	// Expired: a deploy after the exceptions end is blocked again.
	n.supply.now = func() time.Time { return time.Now().Add(72 * time.Hour) }
	if _, err := n.client.Deploy(ctx, bundleOf(t, xtextManifest+"owner: later\n", vulnerable)); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("deploy after the exceptions expired: %v", err)
	}
	n.supply.now = time.Now

	// Bad exceptions.
	for _, req := range []api.ExceptionRequest{
		{ID: "GO-2021-0113", Function: "langs", Until: "2020-01-01", Reason: "past"},
		{ID: "GO-2021-0113", Function: "langs", Until: time.Now().AddDate(2, 0, 0).Format(time.DateOnly), Reason: "too long"},
		{ID: "GO-2021-0113", Function: "langs", Until: time.Now().AddDate(0, 1, 0).Format(time.DateOnly), Reason: ""},
		{ID: "../x", Function: "langs", Until: time.Now().AddDate(0, 1, 0).Format(time.DateOnly), Reason: "r"},
		{ID: "GO-2021-0113", Function: "langs", Until: "tomorrow", Reason: "r"},
	} {
		if _, err := n.client.AllowVuln(ctx, req); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("exception %+v: %v", req, err)
		}
	}
}

func TestRescanDisables(t *testing.T) {
	data := t.TempDir()
	cfg := Config{DataDir: data, VulnPolicy: supply.Policy{Disable: true}}
	n := startNodeConfig(t, cfg)
	ctx := context.Background()
	// Deployed before any advisory is known: it passes.
	deploy(t, n, xtextManifest, inventoryGuest(t, "vulnerable"))
	if resp, body := invoke(t, n, http.MethodGet, "langs", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the import: %d %s", resp.StatusCode, body)
	}
	// A hostile file changes nothing.
	if err := n.client.ImportVulnDB(ctx, strings.NewReader("PK\x03\x04 not a zip at all"), nil); err == nil {
		t.Fatal("a broken zip was imported")
	}
	var res importResult
	if err := n.client.ImportVulnDB(ctx, osvFile(t, "Go/all.zip"), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Found) != 1 || res.Found[0].Function != "langs" || len(res.Disabled) != 1 {
		t.Fatalf("import: %+v", res)
	}
	resp, body := invoke(t, n, http.MethodGet, "langs", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "GO-20") {
		t.Fatalf("after the import: %d %s", resp.StatusCode, body)
	}
	if recs := records(t, n, url.Values{"action": {"vuln.found"}, "fn": {"langs"}}, 3); len(recs) < 3 {
		t.Fatalf("vuln.found records: %+v", recs)
	}
	if recs := records(t, n, url.Values{"action": {"disable"}}, 1); len(recs) != 1 {
		t.Fatalf("disable records: %+v", recs)
	}
	if ls, err := n.client.List(ctx); err != nil || ls[0].Disabled == "" || ls[0].Vulnerabilities["block"] != len(xtextAdvisories) {
		t.Fatalf("ls after the import: %+v %v", ls, err)
	}
	// Importing the same again finds nothing new.
	res = importResult{}
	if err := n.client.ImportVulnDB(ctx, osvFile(t, "Go/all.zip"), &res); err != nil || len(res.Found) != 0 {
		t.Fatalf("second import: %+v %v", res, err)
	}
	// Excepted: it serves again, and survives a restart.
	for _, id := range xtextAdvisories {
		if _, err := n.client.AllowVuln(ctx, api.ExceptionRequest{ID: id, Function: "langs", Until: time.Now().AddDate(0, 1, 0).Format(time.DateOnly), Reason: "accepted risk"}); err != nil {
			t.Fatal(err)
		}
	}
	if resp, body := invoke(t, n, http.MethodGet, "langs", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the exceptions: %d %s", resp.StatusCode, body)
	}
	n.stop()
	n = startNodeConfig(t, cfg)
	var st struct {
		Total int `json:"total"`
	}
	if err := n.client.VulnDBStatus(ctx, &st); err != nil || st.Total != 43 {
		t.Fatalf("status after restart: %+v %v", st, err)
	}
	if resp, _ := invoke(t, n, http.MethodGet, "langs", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after restart: %d", resp.StatusCode)
	}
	sbom, err := n.client.SBOM(ctx, "langs")
	if err != nil || !strings.Contains(string(sbom), "pkg:golang/golang.org/x/text@v0.3.5") || !strings.Contains(string(sbom), "CycloneDX") {
		t.Fatalf("sbom: %v %s", err, sbom)
	}
}

// bundleOf is a function folder of manifest and module, read for deploy.
func bundleOf(t *testing.T, manifest string, wasm []byte) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Read(functionDir(t, manifest, wasm))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLockFilesAndSBOM covers the other ecosystems: a module that is not
// Go, whose dependencies come from the lock files and SBOM its manifest
// names.
func TestLockFilesAndSBOM(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx := context.Background()
	for _, eco := range []string{"npm", "PyPI"} {
		if err := n.client.ImportVulnDB(ctx, osvFile(t, eco+"/all.zip"), nil); err != nil {
			t.Fatal(err)
		}
	}
	lock := func(lodash string) string {
		return `{"name":"web","lockfileVersion":3,"requires":true,"packages":{"":{"name":"web","dependencies":{"lodash":"^4.17.0"}},` +
			`"node_modules/lodash":{"version":"` + lodash + `","resolved":"x","integrity":"sha512-x"}}}`
	}
	deployWith := func(extra string, files map[string]string) error {
		dir := functionDir(t, "name: web\nmodule: fn.wasm\nhttp: {auth: public}\n"+extra, testwasm.MinimalCGI())
		for p, c := range files {
			os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644)
		}
		b, err := bundle.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.client.Deploy(ctx, b)
		return err
	}
	err := deployWith("lockfiles: [package-lock.json]\n", map[string]string{"package-lock.json": lock("4.17.15")})
	if err == nil || !strings.Contains(err.Error(), "lodash 4.17.15") || !strings.Contains(err.Error(), "GHSA-35jh-r3h4-6jhm") || !strings.Contains(err.Error(), "move to 4.17.21") {
		t.Fatalf("lodash 4.17.15: %v", err)
	}
	if err := deployWith("lockfiles: [package-lock.json]\n", map[string]string{"package-lock.json": lock("4.17.21")}); err != nil {
		t.Fatalf("lodash 4.17.21: %v", err)
	}
	// PEP 440 names and versions: Jinja2 is jinja2.
	err = deployWith("lockfiles: [requirements.txt]\n", map[string]string{"requirements.txt": "# pinned\nJinja2==2.10 ; python_version >= \"3\"\nrequests>=2\n"})
	if err == nil || !strings.Contains(err.Error(), "Jinja2 2.10") {
		t.Fatalf("Jinja2 2.10: %v", err)
	}
	// A CycloneDX SBOM naming a vulnerable npm package; a function that
	// tightens the policy to low.
	sbom := `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"minimist","version":"1.2.5","purl":"pkg:npm/minimist@1.2.5"}]}`
	if err := deployWith("sbom: app.cdx.json\nvulnerabilities: {block: low}\n", map[string]string{"app.cdx.json": sbom}); err == nil || !strings.Contains(err.Error(), "minimist 1.2.5") {
		t.Fatalf("SBOM with minimist 1.2.5: %v", err)
	}
	// A hostile lock file is a clear deploy error, and the node still serves.
	if err := deployWith("lockfiles: [package-lock.json]\n", map[string]string{"package-lock.json": `{"lockfileVersion":3,"packages":` + strings.Repeat("[", 100000)}); err == nil || !strings.Contains(err.Error(), "package-lock.json") {
		t.Fatalf("hostile lock file: %v", err)
	}
	if resp, _ := invoke(t, n, http.MethodGet, "web", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("web after a refused deploy: %d", resp.StatusCode)
	}
}
