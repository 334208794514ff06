// Package jsrt is Moat's JavaScript runtime: the Go reactor in runtime/
// (its own module: the goja engine and the SDK) that runs every JavaScript
// function, one script per snapshot (docs/javascript.md).
package jsrt
