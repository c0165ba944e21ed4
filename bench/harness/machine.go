package main

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where and with what a run happened, for the record.
type machine struct {
	nproc      int
	cpu        string
	kernel     string
	goVersion  string // the Go that built the harness
	switchyard string // the binary's version and the Go that built it
	redis      string
	haproxy    string
	nutcracker string
}

func describeMachine(switchyardBin string) machine {
	m := machine{
		nproc:     runtime.NumCPU(),
		cpu:       cpuModel(),
		kernel:    firstLine(output("uname", "-sr")),
		goVersion: runtime.Version(),
		redis:     firstLine(output("redis-server", "--version")),
		// haproxy -v prints "HAProxy version 2.6.12-1+deb12u4 2025/…".
		haproxy: firstLine(output("haproxy", "-v")),
		// nutcracker --version prints "This is nutcracker-0.5.0".
		nutcracker: strings.TrimPrefix(firstLine(output("nutcracker", "--version")), "This is "),
	}
	m.switchyard = switchyardVersion(switchyardBin)
	return m
}

// switchyardVersion is the binary's version and the Go that built it.
func switchyardVersion(bin string) string {
	// switchyard version prints "switchyard 28271cd".
	v := strings.TrimPrefix(firstLine(output(bin, "version")), "switchyard ")
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		v += ", built with " + bi.GoVersion
	}
	return v
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	model, virtual := "unknown", false
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if model == "unknown" {
				model = strings.TrimSpace(v)
			}
		case "flags":
			virtual = virtual || slices.Contains(strings.Fields(v), "hypervisor")
		}
	}
	if virtual {
		model += " (virtual machine)"
	}
	return model
}

// output runs a version command; a missing tool yields "not installed".
func output(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "not installed"
	}
	return string(out)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// loadAverage is the first three fields of /proc/loadavg (1, 5 and 15
// minutes): on a shared machine, how much else was running.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuMeter measures how much CPU time processes other than the harness
// and its children (the servers, proxies and redis-benchmark runs it
// started) used during a run: the machine's busy time from /proc/stat
// minus the harness's own and its reaped children's (getrusage). The
// load average cannot say this, since the run itself keeps both CPUs
// busy.
type cpuMeter struct {
	start       time.Time
	busy0, own0 float64 // seconds
	tck         int64
	unavailable error
}

func startCPUMeter() *cpuMeter {
	m := &cpuMeter{start: time.Now(), tck: clockTicks()}
	m.busy0, m.unavailable = machineBusy(m.tck)
	m.own0 = ownCPU()
	return m
}

// otherWork describes the CPU time others used since the start. Call it
// once every child has been reaped, or their time counts as others'.
func (m *cpuMeter) otherWork(nproc int) string {
	if m.unavailable != nil {
		return fmt.Sprintf("CPU time of other work: unknown (%v)", m.unavailable)
	}
	busy, err := machineBusy(m.tck)
	if err != nil {
		return fmt.Sprintf("CPU time of other work: unknown (%v)", err)
	}
	wall := time.Since(m.start).Seconds()
	other := max(0, (busy-m.busy0)-(ownCPU()-m.own0))
	return fmt.Sprintf("CPU time of other work during the run: %.1f s, %.1f %% of the %d CPUs over %.0f s "+
		"(the machine's busy time in /proc/stat less that of the harness and every process it started)",
		other, 100*other/(wall*float64(nproc)), nproc, wall)
}

// machineBusy is the busy time of all CPUs together since boot, seconds.
func machineBusy(tck int64) (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	ticks, err := parseProcStatBusy(string(b))
	return float64(ticks) / float64(tck), err
}

// parseProcStatBusy reads the aggregate "cpu" line of /proc/stat:
//
//	cpu  user nice system idle iowait irq softirq steal guest guest_nice
//
// and returns user+nice+system+irq+softirq+steal in clock ticks (guest
// time is already part of user).
func parseProcStatBusy(stat string) (int64, error) {
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 9 {
			return 0, fmt.Errorf("/proc/stat: short cpu line %.100q", line)
		}
		var sum int64
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: %.100q: %w", line, err)
			}
			sum += n
		}
		return sum, nil
	}
	return 0, errors.New("/proc/stat: no cpu line")
}

// ownCPU is the user plus system time of the harness and of its children
// that have exited and been reaped, seconds.
func ownCPU() float64 {
	var total float64
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	return total
}
