package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// workload is one redis-benchmark configuration. Each of its tests runs
// as a separate redis-benchmark invocation, so that the CPU time read
// around it belongs to exactly one test.
type workload struct {
	id       string   // stable name, used by the targets
	title    string   // for the report
	tests    []string // redis-benchmark -t names, run in this order
	clients  int      // -c
	pipeline int      // -P
	size     int      // -d, value size in bytes
	scale    int      // requests per test are -n × scale
}

// workloads run in this order in every round. No -r: every command uses
// the one key "key:__rand_int__", so a GET reads exactly what the SET
// before it wrote, whichever endpoint and round it is. The GET-only
// workload comes after a 3-byte SET; the 1 KiB workload comes last, and
// the next round's first SET writes 3 bytes again.
var workloads = []workload{
	{id: "c50p1", title: "50 clients, pipeline 1", tests: []string{"set", "get"}, clients: 50, pipeline: 1, size: 3, scale: 1},
	{id: "c50p16", title: "50 clients, pipeline 16", tests: []string{"set", "get"}, clients: 50, pipeline: 16, size: 3, scale: 8},
	{id: "c400p1", title: "400 clients, pipeline 1", tests: []string{"set", "get"}, clients: 400, pipeline: 1, size: 3, scale: 1},
	{id: "get200", title: "GET-heavy, 200 clients", tests: []string{"get"}, clients: 200, pipeline: 1, size: 3, scale: 1},
	{id: "c50p1d1k", title: "1 KiB values, 50 clients, pipeline 1", tests: []string{"set", "get"}, clients: 50, pipeline: 1, size: 1024, scale: 1},
}

// tlsWorkloads run against plain and TLS ports of direct Redis and of
// Switchyard, in this order, after the workloads above.
var tlsWorkloads = []workload{
	{id: "tls-c50p1", title: "50 clients, pipeline 1", tests: []string{"set", "get"}, clients: 50, pipeline: 1, size: 3, scale: 1},
	{id: "tls-c50p16", title: "50 clients, pipeline 16", tests: []string{"set", "get"}, clients: 50, pipeline: 16, size: 3, scale: 8},
}

// readWorkloads run against the master directly, Switchyard's main port
// and its read port with one and with two replicas serving, last in a
// round. The harness writes the 3-byte value of key:__rand_int__ before
// them, so every node serves the same GET.
var readWorkloads = []workload{
	{id: "reads-c50", title: "GET, 50 clients", tests: []string{"get"}, clients: 50, pipeline: 1, size: 3, scale: 1},
	{id: "reads-c200", title: "GET, 200 clients", tests: []string{"get"}, clients: 200, pipeline: 1, size: 3, scale: 1},
}

// requests is the -n for one test of w.
func (w workload) requests(n int) int { return n * w.scale }

// args are redis-benchmark's arguments for one test of w against port.
func (w workload) args(port, test string, n int) []string {
	return []string{
		"-h", "127.0.0.1", "-p", port,
		"-t", test,
		"-c", strconv.Itoa(w.clients),
		"-P", strconv.Itoa(w.pipeline),
		"-d", strconv.Itoa(w.size),
		"-n", strconv.Itoa(w.requests(n)),
		"--csv",
	}
}

// tlsArgs are the arguments redis-benchmark needs on top of args for a
// TLS port whose certificate ca signs.
func tlsArgs(ca string) []string { return []string{"--tls", "--cacert", ca} }

// caseKey names one test of one workload: a row group of the report.
type caseKey struct {
	workload string // workload.id
	test     string // "set" or "get"
}

// sample is the outcome of one redis-benchmark run against one endpoint.
type sample struct {
	rps      float64 // requests per second
	p50, p99 float64 // latency in ms, as redis-benchmark measures it
	cpu      float64 // CPU seconds the endpoint process used during the run
	requests int
	// nodeGets are the GETs each Redis node served during the run (from
	// INFO commandstats), in the order of readsBench.nodes; reads only.
	nodeGets []int64
}

// benchRow is one data row of redis-benchmark --csv.
type benchRow struct {
	test          string
	rps, p50, p99 float64
}

// runTest runs one test of w against ep and measures the endpoint's CPU.
func runTest(ctx context.Context, bin string, ep endpoint, w workload, test string, n int, tck int64) (sample, error) {
	args := w.args(strconv.Itoa(ep.port), test, n)
	if ep.ca != "" {
		args = append(args, tlsArgs(ep.ca)...)
	}
	before, err := cpuTicks(ep.pid)
	if err != nil {
		return sample{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = childAttr()
	onSpawnThread(func() { err = cmd.Start() })
	if err == nil {
		err = cmd.Wait()
	}
	what := "redis-benchmark " + strings.Join(args, " ")
	if err != nil {
		return sample{}, fmt.Errorf("%s (%s): %w\n%s", what, ep.name, err, lastLines(stderr.String(), 10))
	}
	after, err := cpuTicks(ep.pid)
	if err != nil {
		return sample{}, err
	}
	// redis-benchmark counts error replies as answered requests; a run
	// with errors measures something else than the workload.
	if strings.Contains(stderr.String(), "Error from server") {
		return sample{}, fmt.Errorf("%s (%s): the server answered with errors:\n%s", what, ep.name, lastLines(stderr.String(), 5))
	}
	rows, err := parseCSV(&stdout)
	if err != nil {
		return sample{}, fmt.Errorf("%s (%s): %w", what, ep.name, err)
	}
	if len(rows) != 1 || !strings.EqualFold(rows[0].test, test) {
		return sample{}, fmt.Errorf("%s (%s): want one %s row, got %v", what, ep.name, strings.ToUpper(test), rows)
	}
	r := rows[0]
	return sample{
		rps: r.rps, p50: r.p50, p99: r.p99,
		cpu:      float64(after-before) / float64(tck),
		requests: w.requests(n),
	}, nil
}

// parseCSV reads redis-benchmark --csv output (Redis 7):
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"SET","37209.30","0.862","0.112","0.823","1.447","1.839","11.559"
//
// Columns are found by name in the header; lines before it are ignored.
func parseCSV(r io.Reader) ([]benchRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	col := map[string]int{}
	var rows []benchRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("redis-benchmark csv: %w", err)
		}
		if len(col) == 0 {
			if slices.Contains(rec, "test") {
				for i, name := range rec {
					col[name] = i
				}
				for _, need := range []string{"rps", "p50_latency_ms", "p99_latency_ms"} {
					if _, ok := col[need]; !ok {
						return nil, fmt.Errorf("redis-benchmark csv: header %q has no %s column (Redis 7 or newer is needed)", rec, need)
					}
				}
			}
			continue
		}
		if len(rec) != len(col) {
			return nil, fmt.Errorf("redis-benchmark csv: row %q has %d fields, header %d", rec, len(rec), len(col))
		}
		var row benchRow
		row.test = rec[col["test"]]
		for name, dst := range map[string]*float64{"rps": &row.rps, "p50_latency_ms": &row.p50, "p99_latency_ms": &row.p99} {
			v, err := strconv.ParseFloat(rec[col[name]], 64)
			if err != nil {
				return nil, fmt.Errorf("redis-benchmark csv: row %q: %s: %w", rec, name, err)
			}
			*dst = v
		}
		rows = append(rows, row)
	}
	if len(col) == 0 {
		return nil, errors.New("redis-benchmark csv: no header line")
	}
	return rows, nil
}
