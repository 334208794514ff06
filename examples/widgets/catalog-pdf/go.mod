module github.com/moatfn/moat/examples/widgets/catalog-pdf

go 1.26

require codeberg.org/go-pdf/fpdf v0.12.0
