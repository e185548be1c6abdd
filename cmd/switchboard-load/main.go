// Command switchboard-load places many concurrent calls through a Switchboard service to a bot
// (real WebRTC, real Opus) and reports what they cost and how well they went. docs/load.md
// explains the figures.
//
//	switchboard-load -spawn -bot echo -calls 50 -duration 20s
//	switchboard-load -service-url http://127.0.0.1:8080 -bot echo -service-pid 1234 -bot-pid 1240 \
//	    -bot-metrics http://127.0.0.1:9100/metrics -calls 200
//
// With -spawn it builds and starts `switchboard serve` and examples/<bot> on loopback with a
// generated configuration, measures them, and stops them. It prints one progress line a second
// on stderr and the final table on stdout (JSON with -json).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	cfg                  loadgen.Config
	mode                 string
	spawn, jsonOut       bool
	quiet, logs          bool
	botArgs, serviceArgs string
	peerPorts, loadBot   string
	profile, cpuProfile  string
	keep                 bool
	procs                int
	serviceProcs         int
	botProcs             int
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("switchboard-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.Bot, "bot", "echo", "the bot to call (its app id; with -spawn also examples/<bot>)")
	fs.IntVar(&c.Calls, "calls", 10, "concurrent calls to place")
	fs.Float64Var(&c.Rate, "rate", 20, "calls placed a second while ramping up")
	fs.DurationVar(&c.Settle, "settle", 3*time.Second, "wait after the last call is placed before measuring")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured (steady) window")
	fs.StringVar(&o.mode, "mode", "sendrecv", "sendrecv (the bot sends audio back: echo) or recvonly (the bot only receives; the default with -bot recorder)")
	fs.BoolVar(&c.Video, "video", false, "also send a VP8 camera stream (320x180, 12.5 fps, one layer, encoded once)")
	fs.StringVar(&c.WAV, "wav", "", "16 kHz WAV file to send instead of the generated tone (markers are added)")
	fs.IntVar(&c.DecodeEvery, "decode-every", 10, "decode the returned audio of one call in N (latency markers)")
	fs.DurationVar(&c.EstablishTimeout, "establish-timeout", 30*time.Second, "time to establish one call")
	fs.Float64Var(&c.Loss, "loss", 0, "impairment: packet loss in percent, through a UDP relay per connection")
	fs.DurationVar(&c.Jitter, "jitter", 0, "impairment: extra random delay of each packet, 0..jitter")
	fs.StringVar(&c.ServiceURL, "service-url", "", "the service's base URL (without -spawn)")
	fs.IntVar(&c.ServicePID, "service-pid", 0, "the service's process id, to measure its CPU and memory")
	fs.IntVar(&c.BotPID, "bot-pid", 0, "the bot's process id, to measure its CPU and memory")
	fs.StringVar(&c.BotMetricsURL, "bot-metrics", "", "the bot's Prometheus endpoint with sdk.AudioMetrics (audio event cadence)")
	fs.BoolVar(&o.spawn, "spawn", false, "build and start switchboard serve and examples/<bot> on loopback")
	fs.StringVar(&o.botArgs, "bot-args", "", "extra flags for the spawned bot (space separated)")
	fs.StringVar(&o.serviceArgs, "service-args", "", "extra flags for the spawned service (space separated)")
	fs.StringVar(&o.loadBot, "load-bot", "", "with -spawn: instead of examples/<bot>, run the instrumented load bot (`switchboard-load bot`) in this mode: sendrecv (echo's audio path) or recvonly; registered as -bot")
	fs.StringVar(&o.peerPorts, "peer-ports", "", "with -spawn: run the service as `switchboard-load serve-per-connection` (every peer connection on its own UDP port from this range, e.g. 20000-29999, and /debug/pprof/ served, for profiles) instead of switchboard serve")
	fs.BoolVar(&o.logs, "logs", false, "copy the spawned processes' logs to stderr")
	fs.BoolVar(&o.keep, "keep", false, "keep the spawned processes' work directory (binaries, configuration, logs)")
	fs.StringVar(&o.profile, "profile", "", "directory for CPU profiles of the service and bot over the window (pprof when they serve /debug/pprof, else perf)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself over the measured window to this file (go tool pprof -top FILE)")
	fs.IntVar(&o.serviceProcs, "service-procs", 0, "with -spawn: GOMAXPROCS of the service (0: inherited from the environment, or one per core)")
	fs.IntVar(&o.botProcs, "bot-procs", 0, "with -spawn: GOMAXPROCS of the bot (0: inherited from the environment, or one per core)")
	fs.IntVar(&o.procs, "procs", 1, "GOMAXPROCS of the load generator itself (0: Go's default, one per core); the spawned processes keep theirs. One is enough for its work and saves the scheduler's wake-ups across cores")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	modeSet := false
	fs.Visit(func(f *flag.Flag) { modeSet = modeSet || f.Name == "mode" })
	if !modeSet && c.Bot == "recorder" {
		o.mode = "recvonly" // the recorder only listens: its calls are receive-only unless told
	}
	var err error
	if c.Mode, err = loadgen.ParseMode(o.mode); err != nil {
		return nil, err
	}
	c.Loss /= 100
	if !o.spawn && c.ServiceURL == "" {
		return nil, errors.New("give -spawn, or the running service's -service-url")
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == serveCommand {
		return serve(args[1:], stderr)
	}
	if len(args) > 0 && args[0] == botCommand {
		return runBot(args[1:], stderr)
	}
	if len(args) > 0 && args[0] == summaryCommand {
		return summary(args[1:], stdout, stderr)
	}
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load:", err)
		return 2
	}
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := o.cfg
	if !o.quiet {
		cfg.Progress = stderr
	}
	var debug map[string]string // process name → pprof base URL
	if o.spawn {
		sc := loadgen.SpawnConfig{Bot: cfg.Bot, BotArgs: strings.Fields(o.botArgs), ServiceArgs: strings.Fields(o.serviceArgs), PeerPorts: o.peerPorts, LoadBot: o.loadBot,
			ServiceProcs: o.serviceProcs, BotProcs: o.botProcs}
		if o.logs {
			sc.Logs = stderr
		}
		what := "examples/" + cfg.Bot
		if o.loadBot != "" {
			what = "the " + o.loadBot + " load bot"
		}
		fmt.Fprintf(stderr, "building and starting the service and %s...\n", what)
		sp, err := loadgen.Spawn(ctx, sc)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard-load:", err)
			return 1
		}
		defer func() {
			sp.Close()
			if o.keep {
				fmt.Fprintln(stderr, "work directory kept:", sp.Dir)
			} else {
				sp.RemoveAll()
			}
		}()
		cfg.ServiceURL, cfg.ServicePID, cfg.BotPID = sp.ServiceURL, sp.ServicePID, sp.BotPID
		if cfg.BotMetricsURL == "" {
			cfg.BotMetricsURL = sp.BotMetricsURL
		}
		debug = map[string]string{"service": sp.ServiceDebug, "bot": sp.BotDebugURL}
		fmt.Fprintf(stderr, "service %s (pid %d), bot %s (pid %d), bot metrics %q\n", sp.ServiceURL, sp.ServicePID, cfg.Bot, sp.BotPID, cfg.BotMetricsURL)
	}
	var prof profiler
	var onWindow []func(time.Duration)
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			fmt.Fprintln(stderr, "switchboard-load:", err)
			return 1
		}
		pids := map[string]int{"service": cfg.ServicePID, "bot": cfg.BotPID}
		onWindow = append(onWindow, func(window time.Duration) { prof.start(ctx, o.profile, pids, debug, window, stderr) })
	}
	if o.cpuProfile != "" {
		self, err := newSelfProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard-load:", err)
			return 1
		}
		defer self.stop(stderr)
		onWindow = append(onWindow, self.start)
	}
	if len(onWindow) > 0 {
		cfg.OnWindow = func(window time.Duration) {
			for _, f := range onWindow {
				f(window)
			}
		}
	}
	g, err := loadgen.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load:", err)
		return 2
	}
	rep, err := g.Run(ctx)
	prof.wait()
	if rep != nil {
		if o.jsonOut {
			_ = rep.WriteJSON(stdout)
		} else {
			_ = rep.WriteTable(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load:", err)
		return 1
	}
	if rep.Failed > 0 || rep.Dropped > 0 {
		return 3
	}
	return 0
}

// profiler takes CPU profiles of the measured processes over the window: from their
// /debug/pprof/profile when they serve one, otherwise with perf record.
type profiler struct{ wg sync.WaitGroup }

func (p *profiler) start(ctx context.Context, dir string, pids map[string]int, debug map[string]string, window time.Duration, log io.Writer) {
	secs := int(window / time.Second)
	for name, pid := range pids {
		if pid <= 0 {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if base := debug[name]; base != "" {
				out := filepath.Join(dir, name+".pprof")
				if err := fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, secs), out, window+30*time.Second); err != nil {
					fmt.Fprintf(log, "profile of %s: %v\n", name, err)
					return
				}
				fmt.Fprintf(log, "profile of %s: %s (go tool pprof -top %s)\n", name, out, out)
				return
			}
			out := filepath.Join(dir, name+".perf.data")
			cmd := exec.CommandContext(ctx, "perf", "record", "-q", "-F", "199", "-g", "-p", fmt.Sprint(pid), "-o", out, "--", "sleep", fmt.Sprint(secs))
			if b, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(log, "profile of %s: perf record: %v %s\n", name, err, b)
				return
			}
			fmt.Fprintf(log, "profile of %s: %s (perf report -i %s --no-children)\n", name, out, out)
		}()
	}
}

func (p *profiler) wait() { p.wg.Wait() }

// selfProfile is a CPU profile of this process over the measured window.
type selfProfile struct {
	f       *os.File
	mu      sync.Mutex
	running bool
	timer   *time.Timer
}

func newSelfProfile(path string) (*selfProfile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return &selfProfile{f: f}, nil
}

// start begins the profile; it ends after window (or at stop).
func (p *selfProfile) start(window time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := pprof.StartCPUProfile(p.f); err != nil {
		return
	}
	p.running = true
	p.timer = time.AfterFunc(window, p.end)
}

func (p *selfProfile) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		pprof.StopCPUProfile()
		p.running = false
	}
}

// stop ends the profile if it still runs and closes the file.
func (p *selfProfile) stop(log io.Writer) {
	p.mu.Lock()
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.end()
	if err := p.f.Close(); err != nil {
		fmt.Fprintln(log, "cpu profile:", err)
		return
	}
	fmt.Fprintf(log, "profile of the load generator: %s (go tool pprof -top %s)\n", p.f.Name(), p.f.Name())
}

// fetch saves a URL's body to a file.
func fetch(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}
