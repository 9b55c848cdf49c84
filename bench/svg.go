//go:build linux

package main

import (
	"fmt"
	"math"
	"strings"
)

// Colours of the chart, one per implementation and per target outcome.
var implColour = map[string]string{nameVeth: "#9e9e9e", nameWG: "#4e79a7", nameGotatun: "#f28e2b"}

const (
	colourMet    = "#59a14f"
	colourNotMet = "#e15759"
	colourNoGoal = "#bab0ac"
)

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func esc(s string) string { return xmlEscaper.Replace(s) }

// svgWriter accumulates SVG elements.
type svgWriter struct{ b strings.Builder }

func (w *svgWriter) f(format string, args ...any) {
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

func (w *svgWriter) text(x, y float64, anchor, class, s string) {
	w.f(`<text x="%.1f" y="%.1f" text-anchor="%s" class="%s">%s</text>`, x, y, anchor, class, esc(s))
}

// renderSVG draws two panels: absolute throughput of the three paths, and
// gotatun's advantage over wireguard-go for every figure with a ratio.
func renderSVG(rep report) string {
	const (
		width  = 960.0
		labelW = 260.0
		plotX  = labelW + 10
		plotW  = width - plotX - 150
		barH   = 11.0
		barGap = 3.0
	)
	var w svgWriter
	y := 30.0

	// Panel 1: throughput.
	var thr []metricResult
	maxTunnel, maxAll := 0.0, 0.0
	for _, r := range rep.Metrics {
		if r.Unit != "Mbit/s" || r.Group != groupThroughput || r.ID == "udp_max_rate" {
			continue
		}
		thr = append(thr, r)
		for who, s := range r.Values {
			maxAll = max(maxAll, s.Max)
			if who != nameVeth {
				maxTunnel = max(maxTunnel, s.Max)
			}
		}
	}
	// The bare veth can be many times faster than any tunnel; its bars are
	// then cut at the edge (marked, with the true value as label) so the
	// tunnels stay readable.
	maxV := min(maxAll, 1.5*maxTunnel)
	if maxV <= 0 {
		maxV = max(maxAll, 1)
	}
	scale := plotW / (maxV * 1.05)
	clip := func(v float64) float64 { return math.Min(math.Max(0, v*scale), plotW) }
	w.text(10, y, "start", "title", "Throughput through the tunnel (Mbit/s, median; whiskers: min–max over rounds)")
	y += 12
	legendX := 10.0
	for _, who := range []string{nameVeth, nameWG, nameGotatun} {
		label := who
		if who == nameVeth {
			label = "bare veth (ceiling)"
		}
		w.f(`<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s"/>`, legendX, y+2, implColour[who])
		w.text(legendX+16, y+11, "start", "small", label)
		legendX += 30 + 7*float64(len(label))
	}
	y += 22
	for _, r := range thr {
		var present []string
		for _, who := range []string{nameVeth, nameWG, nameGotatun} {
			if r.Values[who] != nil {
				present = append(present, who)
			}
		}
		groupH := float64(len(present))*(barH+barGap) - barGap
		w.text(labelW, y+groupH/2+4, "end", "label", r.label())
		for _, who := range present {
			s := r.Values[who]
			bw := clip(s.Median)
			w.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
				plotX, y, bw, barH, implColour[who], esc(who), esc(formatStat(s, 0)))
			if s.Median*scale > plotW {
				bx := plotX + plotW - 14
				w.f(`<path d="M%.1f %.1fl4 -%.1fM%.1f %.1fl4 -%.1f" class="cut"/>`, bx, y+barH, barH, bx+5, y+barH, barH)
			}
			if s.Max > s.Min && s.Min*scale < plotW {
				x0, x1, ym := plotX+clip(s.Min), plotX+clip(s.Max), y+barH/2
				w.f(`<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" class="whisker"/>`, x0, ym, x1, x0, ym-3, ym+3, x1, ym-3, ym+3)
			}
			w.text(plotX+math.Max(bw, clip(s.Max))+4, y+barH-1, "start", "small", formatNum(s.Median, 0))
			y += barH + barGap
		}
		y += 10
	}

	// Panel 2: advantage over wireguard-go on a log scale.
	y += 20
	w.text(10, y, "start", "title", "gotatun's advantage over wireguard-go (log scale; right of 1× = gotatun better)")
	y += 12
	legendX = 10
	for _, l := range [][2]string{{colourMet, "target met"}, {colourNotMet, "target not met"}, {colourNoGoal, "no target"}} {
		w.f(`<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s"/>`, legendX, y+2, l[0])
		w.text(legendX+16, y+11, "start", "small", l[1])
		legendX += 40 + 7*float64(len(l[1]))
	}
	w.f(`<path d="M%.1f %.1fv10" class="goal"/>`, legendX, y+1)
	w.text(legendX+6, y+11, "start", "small", "target")
	y += 26
	const lo, hi = -4.0, 5.0 // log2 range: 1/16× … 32×
	xOf := func(adv float64) float64 {
		l := math.Log2(adv)
		l = math.Max(lo, math.Min(hi, l))
		return plotX + (l-lo)/(hi-lo)*plotW
	}
	top := y
	var rows []metricResult
	for _, r := range rep.Metrics {
		if r.Values[nameGotatun] != nil && r.Values[nameWG] != nil {
			rows = append(rows, r)
		}
	}
	rowH := 17.0
	bottom := top + float64(len(rows))*rowH
	for e := lo; e <= hi; e++ {
		x := xOf(math.Exp2(e))
		cls := "grid"
		if e == 0 {
			cls = "axis"
		}
		w.f(`<path d="M%.1f %.1fV%.1f" class="%s"/>`, x, top-4, bottom, cls)
		w.text(x, bottom+14, "middle", "small", formatRatioPlain(math.Exp2(e)))
	}
	for _, r := range rows {
		g, wg := r.Values[nameGotatun].Median, r.Values[nameWG].Median
		adv, label := advantage(r, g, wg)
		colour := colourNoGoal
		if r.Met != nil {
			colour = colourNotMet
			if *r.Met {
				colour = colourMet
			}
		}
		w.text(labelW, y+barH, "end", "label", r.label())
		if !math.IsNaN(adv) {
			x0, x1 := xOf(1), xOf(adv)
			w.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				math.Min(x0, x1), y+1, math.Max(1, math.Abs(x1-x0)), barH, colour, esc(label))
		}
		if r.Target != nil {
			var goal float64
			switch r.Target.Kind {
			case "ratio_min":
				goal = r.Target.Value
			case "ratio_max":
				goal = 1 / r.Target.Value
			}
			if goal > 0 {
				gx := xOf(goal)
				w.f(`<path d="M%.1f %.1fv%.1f" class="goal"/>`, gx, y-1, barH+4)
			}
		}
		w.text(plotX+plotW+6, y+barH, "start", "small", label)
		y += rowH
	}
	y = bottom + 34
	gen := "Generated by bench/ " + rep.Generated
	if rep.Smoke {
		gen += " (smoke run: numbers not meaningful)"
	}
	w.text(10, y, "start", "small", gen)
	y += 10

	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif">`+"\n", width, y, width, y)
	out.WriteString(`<style>
.title { font-size: 14px; font-weight: bold; fill: #222; }
.label { font-size: 11px; fill: #222; }
.small { font-size: 10px; fill: #444; }
.whisker { stroke: #222; stroke-width: 1; fill: none; }
.grid { stroke: #ddd; stroke-width: 1; }
.axis { stroke: #666; stroke-width: 1.2; }
.goal { stroke: #000; stroke-width: 2; }
.cut { stroke: #fff; stroke-width: 2.5; fill: none; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
`)
	out.WriteString(w.b.String())
	out.WriteString("</svg>\n")
	return out.String()
}

// advantage is how many times better gotatun is than wireguard-go on r
// (above 1 is better, whichever way the figure points), and a label with
// the raw ratio. NaN when no ratio can be formed.
func advantage(r metricResult, g, wg float64) (float64, string) {
	switch {
	case g == 0 && wg == 0:
		return 1, "both 0"
	case wg <= 0 || g < 0:
		return math.NaN(), fmt.Sprintf("%s vs %s", formatNum(g, 1), formatNum(wg, 1))
	case g == 0:
		if r.HigherIsBetter {
			return 0, "gotatun 0"
		}
		return math.Inf(1), "gotatun 0"
	}
	ratio := g / wg
	if r.HigherIsBetter {
		return ratio, formatRatio(&ratio)
	}
	return 1 / ratio, formatRatio(&ratio) + " (lower is better)"
}

func formatRatioPlain(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f×", v)
	}
	return fmt.Sprintf("1/%.0f×", 1/v)
}
