module github.com/moatfn/moat

go 1.26.8

require (
	github.com/tetratelabs/wazero v1.12.0
	go.yaml.in/yaml/v3 v3.0.6
)

require golang.org/x/sys v0.49.0 // indirect
