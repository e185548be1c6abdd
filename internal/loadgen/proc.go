package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// ErrNoProcess is returned when a process's /proc entry cannot be read.
var ErrNoProcess = errors.New("loadgen: process not readable in /proc")

// procCPU returns the user+system CPU time a process has used, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w (%w)", pid, ErrNoProcess, err)
	}
	return parseStatCPU(data)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/<pid>/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are counted after the last
// ')'.
func parseStatCPU(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat %.40q: no command name: %w", data, ErrNoProcess)
	}
	f := strings.Fields(string(data[i+1:]))
	// After ')': state is field 3, so utime (14) and stime (15) are f[11] and f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the name, want 13 or more: %w", len(f), ErrNoProcess)
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc stat CPU field %q: %w", s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// procMemory returns a process's peak resident set (VmHWM) and current one (VmRSS), in bytes.
func procMemory(pid int) (peak, rss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of pid %d: %w (%w)", pid, ErrNoProcess, err)
	}
	return parseStatusMemory(data)
}

func parseStatusMemory(data []byte) (peak, rss int64, err error) {
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("parse /proc status %s %q: %w", key, val, ErrNoProcess)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc status %s %q: %w", key, val, err)
		}
		if key == "VmHWM" {
			peak = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if peak == 0 && rss == 0 {
		return 0, 0, fmt.Errorf("parse /proc status: no VmHWM or VmRSS: %w", ErrNoProcess)
	}
	return peak, rss, nil
}

// loadAverage returns the 1-minute load average and the machine's CPU count.
func loadAverage() (float64, error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("read load average: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, errors.New("read load average: empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}

// machineCPU returns the busy and total CPU time of the whole machine from /proc/stat, in
// ticks, so that the machine's use over a window is their differences' ratio.
func machineCPU() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("parse /proc/stat line %q", line)
	}
	for i, s := range f[1:min(len(f), 9)] { // guest times are already in user and nice
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat field %q: %w", s, err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}
