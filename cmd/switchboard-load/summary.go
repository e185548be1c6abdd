package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/switchboard-rtc/switchboard/internal/loadgen"
)

// summaryCommand prints `make bench`'s one table: the Go benchmarks' results (the output of
// go test -bench) and a load run's report (switchboard-load -json).
const summaryCommand = "summary"

func summary(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: switchboard-load summary <go test -bench output> <switchboard-load -json output>")
		return 2
	}
	f, err := os.Open(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load summary:", err)
		return 1
	}
	defer f.Close()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tns/op\tB/op\tallocs/op\tother\t")
	pkg, pending := "", ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "github.com/switchboard-rtc/switchboard/")
			continue
		}
		// A benchmark's result may come on a later line when something it ran logged in
		// between: "BenchmarkX-2  <log...>" then "  100  123 ns/op ...".
		if strings.HasPrefix(line, "Benchmark") {
			pending = strings.Fields(line)[0]
			if f := strings.Fields(line); len(f) > 1 && !isCount(f[1]) {
				continue
			}
		} else if f := strings.Fields(line); pending != "" && len(f) > 2 && isCount(f[0]) && strings.Contains(line, "/op") {
			line = pending + " " + line
		} else {
			continue
		}
		name, vals, ok := parseBenchLine(line)
		if !ok {
			continue
		}
		pending = ""
		var other []string
		for _, v := range vals {
			switch v[1] {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, v[0]+" "+v[1])
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", pkg+" "+name, unit(vals, "ns/op"), unit(vals, "B/op"), unit(vals, "allocs/op"), strings.Join(other, ", "))
	}
	_ = tw.Flush()
	data, err := os.ReadFile(args[1])
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load summary:", err)
		return 1
	}
	var r loadgen.Report
	if err := json.Unmarshal(data, &r); err != nil {
		fmt.Fprintf(stderr, "switchboard-load summary: %s: %v\n", args[1], err)
		return 1
	}
	fmt.Fprintln(stdout)
	_ = r.WriteTable(stdout)
	return 0
}

// parseBenchLine splits "BenchmarkX-2  100  123 ns/op  0 B/op ..." into the name and its
// (value, unit) pairs.
func parseBenchLine(line string) (name string, vals [][2]string, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return "", nil, false
	}
	for i := 2; i+1 < len(f); i += 2 {
		vals = append(vals, [2]string{f[i], f[i+1]})
	}
	return f[0], vals, true
}

func isCount(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func unit(vals [][2]string, u string) string {
	for _, v := range vals {
		if v[1] == u {
			return v[0]
		}
	}
	return "-"
}
