package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []benchRow
		wantErr string
	}{
		{
			name: "redis 7",
			in: `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","37209.30","0.862","0.112","0.823","1.447","1.839","11.559"
"GET","34258.31","0.944","0.120","0.903","1.487","1.831","10.255"
`,
			want: []benchRow{{"SET", 37209.30, 0.823, 1.839}, {"GET", 34258.31, 0.903, 1.831}},
		},
		{
			name: "columns found by name, noise before the header",
			in: `WARNING: Could not fetch server CONFIG
"p99_latency_ms","test","p50_latency_ms","rps"
"2.5","GET","1.5","1000"
`,
			want: []benchRow{{"GET", 1000, 1.5, 2.5}},
		},
		{
			name:    "redis 6 has no percentiles",
			in:      "\"test\",\"rps\"\n\"SET\",\"100.00\"\n",
			wantErr: "no p50_latency_ms column",
		},
		{name: "empty", in: "", wantErr: "no header"},
		{
			name:    "bad number",
			in:      "\"test\",\"rps\",\"p50_latency_ms\",\"p99_latency_ms\"\n\"SET\",\"x\",\"1\",\"2\"\n",
			wantErr: "rps",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCSV(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("row %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{3}, 3},
		{"odd, unsorted", []float64{9, 1, 5}, 5},
		{"even takes the mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("median reordered its argument: %v", tt.in)
				}
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	// The command name may contain spaces and parentheses.
	stat := "4242 (a) b) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 3 0 100 1000000 200 18446744073709551615"
	got, err := parseStatTicks(stat)
	if err != nil || got != 1234+567 {
		t.Errorf("parseStatTicks = %d, %v; want %d", got, err, 1234+567)
	}
	if _, err := parseStatTicks("4242 (x) S 1"); err == nil {
		t.Error("parseStatTicks accepted a short line")
	}
	status := "Name:\tswitchyard\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n"
	if rss, err := parseVmRSS(status); err != nil || rss != 12345 {
		t.Errorf("parseVmRSS = %d, %v; want 12345", rss, err)
	}
	if _, err := parseVmRSS("Name:\tx\n"); err == nil {
		t.Error("parseVmRSS accepted a status without VmRSS")
	}
}

// fakeResults has direct Redis and Switchyard in every test, HAProxy in
// one, and three rounds each.
func fakeResults() *results {
	r := newResults(workloads, []string{epRedis, epSwitchyard, epHAProxy})
	for _, w := range workloads {
		for _, t := range w.tests {
			k := caseKey{w.id, t}
			for _, rps := range []float64{100000, 90000, 110000} {
				r.add(k, epRedis, sample{rps: rps, p50: 0.5, p99: 1.0, cpu: 1, requests: 100000})
				r.add(k, epSwitchyard, sample{rps: rps / 2, p50: 0.8, p99: 1.5, cpu: 2, requests: 100000})
			}
		}
	}
	r.add(caseKey{"c50p1", "set"}, epHAProxy, sample{rps: 40000, p50: 0.7, p99: 1.1, cpu: 1.5, requests: 100000})
	r.idle[epSwitchyard] = idleSample{conns: 1000, before: 10000, after: 13000}
	return r
}

func TestSummarize(t *testing.T) {
	r := fakeResults()
	s := r.summarize(caseKey{"c50p1", "set"}, epSwitchyard)
	if s.rounds != 3 || s.rps != 50000 || s.ratio != 0.5 || s.cpuPer100k != 2 {
		t.Errorf("summary %+v: want 3 rounds, 50000 rps, ratio 0.5, 2 CPU s/100k", s)
	}
	if d := s.addP99 - 0.5; d > 1e-9 || d < -1e-9 {
		t.Errorf("addP99 = %v, want 0.5", s.addP99)
	}
	if d := r.summarize(caseKey{"c50p1", "set"}, epRedis); d.haveDirect {
		t.Error("direct Redis has a ratio to itself")
	}

	// The ratio is the median of per-round ratios (2.5, 0.3, 0.3), not
	// the ratio of the medians (90/200).
	k := caseKey{"get200", "get"}
	r = newResults(workloads, []string{epRedis, epSwitchyard})
	for i, d := range []float64{100, 200, 300} {
		r.add(k, epRedis, sample{rps: d, requests: 1})
		r.add(k, epSwitchyard, sample{rps: []float64{250, 60, 90}[i], requests: 1})
	}
	if s := r.summarize(k, epSwitchyard); s.rps != 90 || s.ratio != 0.3 || s.ratioLo != 0.3 || s.ratioHi != 2.5 {
		t.Errorf("rps %v, ratio %v (%v–%v): want 90 and the median per-round ratio 0.3 (0.3–2.5)", s.rps, s.ratio, s.ratioLo, s.ratioHi)
	}
}

func TestReport(t *testing.T) {
	r := fakeResults()
	var b strings.Builder
	r.writeThroughput(&b)
	r.writeIdle(&b)
	writeTargets(&b, r.targets())
	out := b.String()
	for _, want := range []string{
		"| 50 clients, pipeline 1 | SET | switchyard | 50000 | 0.50× | 0.50–0.50 | 0.800 | +0.300 | 1.500 | +0.500 | 2.00 |",
		"| 50 clients, pipeline 1 | SET | redis | 100000 | — | — |",
		"| switchyard | 1000 | 9.8 | 12.7 | 3.00 |",
		"| Throughput ≥ 0.9× direct Redis, 50 clients, pipeline 1 | **not met** | SET 0.50×, GET 0.50× |",
		"| p99 ≤ direct + 0.2 ms, 50 clients, pipeline 1 | **not met** | SET +0.500 ms, GET +0.500 ms |",
		"| ≤ 4 KiB RSS per idle client connection | met | 3.00 KiB (1000 connections) |",
		"below haproxy in 0 of 1 tests (1.25–1.25× of haproxy)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
	// Every throughput row has as many cells as its header.
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "| 50 clients") && strings.Count(line, "|") != 12 {
			t.Errorf("row with %d separators, want 12: %s", strings.Count(line, "|"), line)
		}
	}
}

// TestP99AtTheLimit: p99s that differ by exactly the limit, as
// redis-benchmark prints them, meet the target, although their float
// difference is a hair above 0.2; a microsecond more does not.
func TestP99AtTheLimit(t *testing.T) {
	for _, c := range []struct {
		sy   float64
		want string
	}{{2.103, targetMet}, {2.104, targetNotMet}} {
		r := newResults(workloads, []string{epRedis, epSwitchyard})
		for _, test := range workloadByID("c50p1").tests {
			k := caseKey{"c50p1", test}
			r.add(k, epRedis, sample{rps: 1000, p99: 1.903, requests: 1})
			r.add(k, epSwitchyard, sample{rps: 1000, p99: c.sy, requests: 1})
		}
		if v := r.p99Target(); v.status != c.want {
			t.Errorf("p99 %v against 1.903: %s (%s), want %s", c.sy, v.status, v.value, c.want)
		}
	}
}

// TestBaselineReport: with -baseline, the record compares switchyard
// with the baseline round by round, and the proxies' targets stay
// switchyard's.
func TestBaselineReport(t *testing.T) {
	r := newResults(workloads, []string{epRedis, epSwitchyard, epBaseline})
	k := caseKey{"c50p1", "set"}
	for i, d := range []float64{100000, 80000, 120000} {
		r.add(k, epRedis, sample{rps: d, p50: 0.5, p99: 1.0, cpu: 1, requests: 100000})
		r.add(k, epSwitchyard, sample{rps: []float64{90000, 80000, 96000}[i], p50: 0.6, p99: 1.2, cpu: 1.2, requests: 100000})
		r.add(k, epBaseline, sample{rps: []float64{100000, 64000, 120000}[i], p50: 0.7, p99: 1.5, cpu: 1.3, requests: 100000})
	}
	rec := &record{proxies: r, rounds: 3, n: 100000}
	var b strings.Builder
	rec.write(&b)
	out := b.String()
	// Per-round ratios 0.90, 1.25, 0.80: the median is 0.90.
	for _, want := range []string{
		"### Switchyard against the baseline binary",
		"| 50 clients, pipeline 1 | SET | 0.90× | 0.80–1.25 | -0.100 | -0.300 | 1.20, 1.30 |",
		"| 50 clients, pipeline 1 | SET | baseline | 100000 | 1.00× |",
		"| Throughput ≥ 0.9× direct Redis, 50 clients, pipeline 1 | met | SET 0.90×",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
	b.Reset()
	(&record{proxies: fakeResults(), rounds: 3, n: 100000}).write(&b)
	if strings.Contains(b.String(), "baseline") {
		t.Error("a run without -baseline reports one")
	}
}

func TestReplaceBetween(t *testing.T) {
	doc := "# Bench\n\n" + markerStart + "\nold\n" + markerEnd + "\ntail\n"
	got, err := replaceBetween(doc, "new\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# Bench\n\n" + markerStart + "\nnew\n" + markerEnd + "\ntail\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"no markers", markerEnd + markerStart, markerStart + markerStart + markerEnd} {
		if _, err := replaceBetween(bad, "x"); err == nil {
			t.Errorf("replaceBetween(%q) accepted it", bad)
		}
	}
}

func TestBenchCommands(t *testing.T) {
	cmds := benchCommands([]string{suiteProxies}, 1000)
	if len(cmds) != 10 || cmds[0] != "# proxies" {
		t.Fatalf("%d lines, want a heading and 9 commands (four SET/GET workloads and one GET-only): %q", len(cmds), cmds)
	}
	if want := "redis-benchmark -h 127.0.0.1 -p PORT -t set -c 50 -P 16 -d 3 -n 8000 --csv"; cmds[3] != want {
		t.Errorf("pipeline-16 command %q, want %q", cmds[3], want)
	}

	cmds = benchCommands([]string{suiteTLS, suiteReads}, 1000)
	want := []string{
		"# tls",
		"redis-benchmark -h 127.0.0.1 -p PORT -t set -c 50 -P 1 -d 3 -n 1000 --csv",
		"redis-benchmark -h 127.0.0.1 -p PORT -t set -c 50 -P 1 -d 3 -n 1000 --csv --tls --cacert ca.pem",
		"redis-benchmark -h 127.0.0.1 -p PORT -t get -c 50 -P 1 -d 3 -n 1000 --csv",
		"redis-benchmark -h 127.0.0.1 -p PORT -t get -c 50 -P 1 -d 3 -n 1000 --csv --tls --cacert ca.pem",
		"redis-benchmark -h 127.0.0.1 -p PORT -t set -c 50 -P 16 -d 3 -n 8000 --csv",
		"redis-benchmark -h 127.0.0.1 -p PORT -t set -c 50 -P 16 -d 3 -n 8000 --csv --tls --cacert ca.pem",
		"redis-benchmark -h 127.0.0.1 -p PORT -t get -c 50 -P 16 -d 3 -n 8000 --csv",
		"redis-benchmark -h 127.0.0.1 -p PORT -t get -c 50 -P 16 -d 3 -n 8000 --csv --tls --cacert ca.pem",
		"# reads",
		"redis-benchmark -h 127.0.0.1 -p PORT -t get -c 50 -P 1 -d 3 -n 1000 --csv",
		"redis-benchmark -h 127.0.0.1 -p PORT -t get -c 200 -P 1 -d 3 -n 1000 --csv",
	}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Errorf("TLS and reads commands:\n%s\nwant:\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
}

func TestConfigs(t *testing.T) {
	h := haproxyConfig(7000, "127.0.0.1:6379", 11000)
	for _, want := range []string{"nbthread 1", "mode tcp", "maxconn 11000", "bind 127.0.0.1:7000", "server master 127.0.0.1:6379\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("haproxy config lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, " check") {
		t.Errorf("haproxy config has a health check:\n%s", h)
	}
	tw := twemproxyConfig(7001, "127.0.0.1:6379")
	for _, want := range []string{"listen: 127.0.0.1:7001", "redis: true", "preconnect: true", "server_connections: 1", "- 127.0.0.1:6379:1"} {
		if !strings.Contains(tw, want) {
			t.Errorf("twemproxy config lacks %q:\n%s", want, tw)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-n", "500", "-endpoints", "redis,switchyard"})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 1 || o.n != 500 || o.idle != 1000 || len(o.endpoints) != 2 {
		t.Errorf("-quick -n 500: got rounds %d, n %d, idle %d, endpoints %v", o.rounds, o.n, o.idle, o.endpoints)
	}
	if !slices.Equal(o.suites, allSuites) {
		t.Errorf("default suites %v, want %v", o.suites, allSuites)
	}
	o, err = parseFlags([]string{"-workloads", "reads, tls,reads", "-endpoints", "switchyard"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.suites, []string{suiteReads, suiteTLS}) || o.has(suiteProxies) {
		t.Errorf("-workloads reads,tls,reads: suites %v", o.suites)
	}
	o, err = parseFlags([]string{"-baseline", "/tmp/old-switchyard", "-endpoints", "redis,switchyard"})
	if err != nil {
		t.Fatal(err)
	}
	if o.baseline != "/tmp/old-switchyard" || !slices.Equal(o.endpoints, []string{epRedis, epSwitchyard, epBaseline}) {
		t.Errorf("-baseline: baseline %q, endpoints %v", o.baseline, o.endpoints)
	}
	for _, bad := range [][]string{
		{"-baseline", "b", "-write"},                      // the record is of one binary
		{"-baseline", "b", "-workloads", "tls"},           // compared in the proxies suite only
		{"-baseline", "b", "-endpoints", "redis,haproxy"}, // nothing to compare it with
		{"-endpoints", "redis,switchyard,baseline"},       // only through -baseline
		{"-endpoints", "switchyard"},                      // no direct Redis to compare with
		{"-endpoints", "redis,envoy"},
		{"-sentinel", "maybe"},
		{"-rounds", "0"},
		{"-workloads", "tls,ssl"},
		{"-workloads", ","},
		{"-workloads", "reads", "-sentinel", "off"}, // replicas are found through Sentinel
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted it", bad)
		}
	}
}
