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
	worker := "var __moat_module = (() => {\n" + strings.Replace(string(src), "export default {", "return { default: {", 1) + "}})();\n"
	worker = strings.Replace(worker, "},\n};\n}})();", "},\n}};\n})();", 1)
	constant := `var __moat_module = (() => { const r = '{"sum":3}'; return {default: {fetch() { return new Response(r); }}}; })();`
	b.Run("json", func(b *testing.B) { benchNative(b, worker, "POST", "/json", `"sum":55.5`) })
	b.Run("hello", func(b *testing.B) { benchNative(b, worker, "GET", "/hello?name=bench", `hello, bench`) })
	b.Run("notfound", func(b *testing.B) { benchNative(b, worker, "GET", "/none", `404`) })
	b.Run("constant", func(b *testing.B) { benchNative(b, constant, "GET", "/", `"sum":3`) })
	loop := `var __moat_module = (() => ({default: {fetch() { let s = 0; for (let i = 0; i < 10000; i++) s += i; return new Response(String(s)); }}}))();`
	b.Run("loop", func(b *testing.B) { benchNative(b, loop, "GET", "/", `49995000`) })
}

func benchNative(b *testing.B, script, method, path, want string) {
	if err := loadScript([]byte(script)); err != nil {
		b.Fatal(err)
	}
	body := `{"name":"moat","items":[1,2,3.5,4,5,6,7,8,9,10]}`
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(method, "http://fn.example"+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		handle(w, r)
		if !strings.Contains(w.Body.String(), want) {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
