package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/loadgen"
)

func TestParse(t *testing.T) {
	for _, bad := range [][]string{
		{},                          // neither -spawn nor -service-url
		{"-spawn", "-mode", "both"}, // unknown mode
		{"-spawn", "extra"},         // stray argument
	} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
	o, err := parse([]string{"-spawn", "-calls", "7", "-loss", "5", "-mode", "recvonly"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Calls != 7 || o.cfg.Loss != 0.05 || o.cfg.Mode != loadgen.Recvonly {
		t.Fatalf("parsed %+v", o.cfg)
	}
	// The recorder's calls are receive-only unless -mode says otherwise; other bots' sendrecv.
	for _, c := range []struct {
		args []string
		want loadgen.Mode
	}{
		{[]string{"-spawn", "-bot", "recorder"}, loadgen.Recvonly},
		{[]string{"-spawn", "-bot", "recorder", "-mode", "sendrecv"}, loadgen.Sendrecv},
		{[]string{"-spawn", "-bot", "echo"}, loadgen.Sendrecv},
	} {
		o, err := parse(c.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.cfg.Mode != c.want {
			t.Errorf("parse(%q): mode %v, want %v", c.args, o.cfg.Mode, c.want)
		}
	}
	if lo, hi, err := parseRange("20000-29999"); err != nil || lo != 20000 || hi != 29999 {
		t.Fatalf("parseRange: %d %d %v", lo, hi, err)
	}
	for _, bad := range []string{"", "5", "9-1", "0-10", "1-70000"} {
		if _, _, err := parseRange(bad); err == nil {
			t.Errorf("parseRange(%q) succeeded", bad)
		}
	}
}

func TestSummary(t *testing.T) {
	dir := t.TempDir()
	bench := filepath.Join(dir, "go.txt")
	load := filepath.Join(dir, "load.json")
	_ = os.WriteFile(bench, []byte(`goos: linux
pkg: github.com/switchboard-rtc/switchboard/sdk
BenchmarkAudioMetricsRecord-2   	  200000	        68.42 ns/op	       0 B/op	       0 allocs/op
pkg: github.com/switchboard-rtc/switchboard/service/sfu
BenchmarkForwardAudioPion-2   	mux ERROR: 2026/11/25 15:46:16 mux: failed to read
mux ERROR: 2026/11/25 15:46:16 mux: failed to read
   15855	     14667 ns/op	    1601 B/op	       5 allocs/op
BenchmarkCalls/sendrecv-20-2 	 1	8376810288 ns/op	14.57 cpu-ms/call-s	28.05 p99-ms
PASS
`), 0o644)
	r := loadgen.Report{Bot: "echo", Mode: "sendrecv", Calls: 5, Established: 5}
	f, _ := os.Create(load)
	_ = r.WriteJSON(f)
	f.Close()
	var out strings.Builder
	if rc := summary([]string{bench, load}, &out, io.Discard); rc != 0 {
		t.Fatalf("summary returned %d", rc)
	}
	for _, want := range []string{
		"sdk BenchmarkAudioMetricsRecord-2", "68.42",
		"service/sfu BenchmarkForwardAudioPion-2", "14667", "1601",
		"14.57 cpu-ms/call-s", "5 established",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if rc := summary([]string{bench}, &out, io.Discard); rc != 2 {
		t.Errorf("one argument: %d, want 2", rc)
	}
}
