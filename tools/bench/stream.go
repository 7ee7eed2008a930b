package main

import (
	"fmt"
	"time"
)

// streamRuns are the stream tunnel's benchmarks: the idle cost of a
// connected tunnel, counted over window once without it and once with it
// (none when window is 0), and one scrape of the metrics paths through
// it with 10 running pods (root and runc).
func streamRuns(window time.Duration, benchtime string) []benchRun {
	var runs []benchRun
	if window > 0 {
		runs = append(runs, benchRun{pkg: "./stream", bench: "^BenchmarkIdleTunnel$", benchtime: "1x",
			args: []string{"-idlewindow", window.String()}})
	}
	return append(runs, benchRun{pkg: "./pod", bench: "^BenchmarkScrape$", benchtime: benchtime, root: true})
}

// streamRows shows what the idle tunnel costs the node per minute beside
// the same process without it, and what one scrape costs through the
// tunnel beside the edge's handler alone. All are informative.
func streamRows(bs []bench) []row {
	var rows []row
	const idle = "stream tunnel connected and idle (ping every 5 s)"
	if b, ok := findExact(bs, "./stream", "BenchmarkIdleTunnel", "ticks/min"); ok {
		m := b.metrics
		rows = append(rows,
			row{idle + ": CPU", fmt.Sprintf("%.2f ticks/min (%.2f without the tunnel: %+.2f)",
				m["ticks/min"], m["base_ticks/min"], m["ticks/min"]-m["base_ticks/min"]), "-", "-"},
			row{idle + ": heap allocations", fmt.Sprintf("%.0f /min, %.1f KiB/min (%.0f /min without the tunnel: %+.0f)",
				m["allocs/min"], m["B/min"]/1024, m["base_allocs/min"], m["allocs/min"]-m["base_allocs/min"]), "-", "-"})
	} else {
		rows = append(rows, row{idle, "not run (see stderr)", "-", "-"})
	}
	for _, p := range []struct{ name, path string }{{"resource", "/metrics/resource"}, {"summary", "/stats/summary"}} {
		label := "one scrape of " + p.path + " through the tunnel, 10 running pods"
		t, ok := findExact(bs, "./pod", "BenchmarkScrape/"+p.name+"/tunnel", "ns/op")
		if !ok {
			rows = append(rows, row{label, notRun, "-", "-"})
			continue
		}
		v := scrapeCost(t.metrics) + fmt.Sprintf(", %.1f KiB answer", t.metrics["body-B"]/1024)
		if h, ok := findExact(bs, "./pod", "BenchmarkScrape/"+p.name+"/handler", "ns/op"); ok {
			v += " (handler alone " + scrapeCost(h.metrics) + ")"
		}
		rows = append(rows, row{label, v, "-", "-"})
	}
	return rows
}

func scrapeCost(m map[string]float64) string {
	return fmt.Sprintf("%.2f ms, %.0f allocs, %.0f KiB", m["ns/op"]/1e6, m["allocs/op"], m["B/op"]/1024)
}
