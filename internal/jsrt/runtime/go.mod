module github.com/moatfn/moat/internal/jsrt/runtime

go 1.26.0

require (
	github.com/dop251/goja v0.0.0-20260311135729-065cd970411c
	github.com/moatfn/moat/sdk/fn v0.0.0
)

require (
	github.com/dlclark/regexp2 v1.11.4 // indirect
	github.com/go-sourcemap/sourcemap v2.1.3+incompatible // indirect
	github.com/google/pprof v0.0.0-20261105003125-4bf881d7fb0b // indirect
	golang.org/x/text v0.43.0 // indirect
)

replace github.com/moatfn/moat/sdk/fn => ../../../sdk/fn
