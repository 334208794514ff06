// Package fn is the guest SDK for Moat functions written in Go.
//
// A Moat function is an http.Handler. Register it with [Handle] from an init
// function and call [Main] from main:
//
//	func init() { fn.HandleFunc(hello) }
//	func main() { fn.Main() }
//
// Built with -buildmode=c-shared (moat build does so for any function that
// calls fn.Handle), the function is a reactor: Moat initialises it once at
// deploy and serves every request from a fresh copy of that snapshot, at a
// fraction of a command's cost. Built as a plain WASI command (GOOS=wasip1
// GOARCH=wasm), it starts a new Go runtime per request. Either way no request
// sees anything of another.
//
// A function can reach nothing outside its own memory except what its
// manifest grants; this package is how it uses those grants:
//
//   - KV: keys and values in the buckets the manifest names ([KV]).
//   - Objects: files, streamed, in the object buckets it names ([Objects]).
//   - Secrets: the secrets the manifest names ([Secret]).
//   - Egress: HTTPS requests to the manifest's egress prefixes ([HTTPClient]).
//   - Other functions: calls to the functions the manifest names ([Invoke], [Call]).
//   - Logs: structured records in the function's log ([Logger]).
//
// Each of these is a host call (docs/hostcalls.md in the Moat repository
// describes the wire). A call blocks the guest until the host answers; the
// host bounds it by the invocation's timeout and reports [ErrTimeout] when it
// runs out. A call that no grant covers fails with [ErrDenied] and is recorded
// as a security event. Failures are [*Error] values: branch on them with
// errors.Is and the sentinels [ErrDenied], [ErrNotFound] and the rest.
//
// Built for any other target than wasip1 the package still compiles, so code
// that uses it can be unit-tested on a developer's machine, but every host
// call fails with [ErrNotOnMoat].
//
// Everything in the package is safe for concurrent use, except that one
// [ObjectReader] or [ObjectWriter] is for one goroutine at a time; host calls
// from several goroutines run one at a time.
package fn
