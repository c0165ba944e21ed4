package main

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
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
	// switchyard version prints "switchyard 28271cd".
	m.switchyard = strings.TrimPrefix(firstLine(output(switchyardBin, "version")), "switchyard ")
	if bi, err := buildinfo.ReadFile(switchyardBin); err == nil {
		m.switchyard += ", built with " + bi.GoVersion
	}
	return m
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
