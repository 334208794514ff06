module github.com/moatfn/moat/examples/widgets/send-catalog

go 1.26

require github.com/moatfn/moat/sdk/fn v0.0.0

replace github.com/moatfn/moat/sdk/fn => ../../../sdk/fn
