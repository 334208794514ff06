//go:build nativebench

package main

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// BenchmarkHandleNative runs the runtime natively (not in WebAssembly) on
// bench/workerd/worker.js, to profile where the engine's time goes:
//
//	cd internal/jsrt/runtime && go test -tags nativebench -bench . -cpuprofile /tmp/goja.prof
//
// It shares the engine across requests, as the snapshot does not: each
// request in Moat starts from the state after initialisation.
func BenchmarkHandleNative(b *testing.B) {
	src, err := os.ReadFile("../../../bench/workerd/worker.js")
	if err != nil {
		b.Fatal(err)
	}
	// The module as moat build bundles it: exports in __moat_module.
	js := "var __moat_module = (() => {\n" + strings.Replace(string(src), "export default {", "return { default: {", 1) + "}})();\n"
	js = strings.TrimSuffix(strings.TrimSpace(strings.Replace(js, "},\n};\n}})();", "},\n}};\n})();", 1)), "")
	if err := loadScript([]byte(js)); err != nil {
		b.Fatal(err)
	}
	body := `{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "http://fn.example/json", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		handle(w, r)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"sum":55.5`) {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
