package console

import (
	"fmt"
	"time"
)

// chart is a bar chart drawn by the server as SVG: numbers only, so the
// template writes it with no markup from data and the page's CSP needs
// no inline style.
type chart struct {
	W, H  int
	Bars  []bar
	Max   float64
	Empty bool
	Ticks []tick // labels under the bars
}

type bar struct {
	X, Y, W, H float64
	EY, EH     float64 // the errors' part, drawn over it
	Title      string
}

type tick struct {
	X     float64
	Label string
}

// sparkline draws values (and errs, a part of each) as w x h bars.
func sparkline(values, errs []float64, w, h int) chart {
	return draw(values, errs, w, h, time.Time{}, time.Hour)
}

// barChart draws hourly values from start, with a tick a day.
func barChart(values, errs []float64, w, h int, start time.Time) chart {
	return draw(values, errs, w, h, start, time.Hour)
}

func draw(values, errs []float64, w, h int, start time.Time, step time.Duration) chart {
	ch := chart{W: w, H: h, Empty: true}
	n := len(values)
	if n == 0 {
		return ch
	}
	for _, v := range values {
		ch.Max = max(ch.Max, v)
	}
	if ch.Max <= 0 {
		return ch
	}
	ch.Empty = false
	bw := float64(w) / float64(n)
	for i, v := range values {
		bh := v / ch.Max * float64(h-1)
		b := bar{X: float64(i) * bw, W: max(bw-1, 1), Y: float64(h) - bh, H: bh}
		var e float64
		if i < len(errs) {
			e = errs[i]
		}
		if e > 0 {
			b.EH = e / ch.Max * float64(h-1)
			b.EY = float64(h) - b.EH
		}
		if !start.IsZero() {
			at := start.Add(time.Duration(i) * step)
			b.Title = fmt.Sprintf("%s: %g (%g errors)", at.UTC().Format("Jan 2 15:00"), v, e)
			if at.UTC().Hour() == 0 {
				ch.Ticks = append(ch.Ticks, tick{X: b.X, Label: at.UTC().Format("Jan 2")})
			}
		} else {
			b.Title = fmt.Sprintf("%g (%g errors)", v, e)
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch
}
