package supply

import (
	"maps"
	"slices"
	"testing"
)

// TestBundledPackages: the packages a bundle holds, from esbuild's module
// comments: scoped and nested packages; a comment that is not at the start
// of a line (a string in the code) names nothing.
func TestBundledPackages(t *testing.T) {
	script := []byte(`var __moat_module = (() => {
  // node_modules/lodash/pick.js
  var a = 1;
  // node_modules/@scope/pkg/dist/index.js
  // node_modules/a/node_modules/b/index.js
	// node_modules/tabbed/x.js
  var s = "// node_modules/inastring/x.js"; // node_modules/trailing/x.js
  // index.js
})();
`)
	got := slices.Sorted(maps.Keys(BundledPackages(script)))
	want := []string{"@scope/pkg", "b", "lodash", "tabbed"}
	if !slices.Equal(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	if len(BundledPackages([]byte("export default {};"))) != 0 {
		t.Fatal("a bundle with no dependency names some")
	}
}
