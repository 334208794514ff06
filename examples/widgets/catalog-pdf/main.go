// Command catalog-pdf renders a personalised widget catalog as a PDF: the
// caller sends who it is for and the widgets that match, and gets
// application/pdf back. It is internal: only contact may call it.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"strings"

	"codeberg.org/go-pdf/fpdf"
)

// Request is what contact sends.
type Request struct {
	Name    string   `json:"name"`
	Widgets []Widget `json:"widgets"`
}

// Widget is one in-stock widget that matches the prospect's preferences.
type Widget struct {
	Colour string `json:"colour"`
	Size   string `json:"size"`
	Stock  int    `json:"stock"`
	Price  string `json:"price"`
}

func render(req Request) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetTitle("Widget catalog", false)
	pdf.SetCreator("moat catalog-pdf", false)
	pdf.SetCompression(false) // small pages; and the text stays searchable
	pdf.AddPage()
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetFont("Helvetica", "B", 20)
	pdf.Cell(0, 12, tr("Your widget catalog"))
	pdf.Ln(16)
	pdf.SetFont("Helvetica", "", 12)
	pdf.MultiCell(0, 6, tr(fmt.Sprintf("Dear %s, thank you for your interest in %s widgets. Here is what we have in stock for you.", req.Name, phrase(req.Widgets))), "", "", false)
	pdf.Ln(6)
	pdf.SetFont("Helvetica", "B", 12)
	for _, h := range []string{"Widget", "In stock", "Price"} {
		pdf.CellFormat(60, 8, h, "B", 0, "", false, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 12)
	for _, w := range req.Widgets {
		pdf.CellFormat(60, 8, tr(w.Size+" "+w.Colour+" widget"), "", 0, "", false, 0, "")
		pdf.CellFormat(60, 8, fmt.Sprint(w.Stock), "", 0, "", false, 0, "")
		pdf.CellFormat(60, 8, tr(w.Price), "", 0, "", false, 0, "")
		pdf.Ln(-1)
	}
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// phrase reads "big blue, small green and tiny red".
func phrase(ws []Widget) string {
	var parts []string
	for _, w := range ws {
		parts = append(parts, w.Size+" "+w.Colour)
	}
	switch len(parts) {
	case 0:
		return "our"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func handle(w http.ResponseWriter, r *http.Request) {
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	b, err := render(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		http.Error(w, "could not render the catalog", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Write(b)
}

func main() { cgi.Serve(http.HandlerFunc(handle)) }
