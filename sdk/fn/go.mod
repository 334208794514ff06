module github.com/moatfn/moat/sdk/fn

go 1.26
