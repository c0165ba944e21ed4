package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

func TestCmdstatCalls(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_set:calls=7,usec=20,usec_per_call=2.86,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=1203,usec=402,usec_per_call=0.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_getrange:calls=5,usec=1,usec_per_call=0.20,rejected_calls=0,failed_calls=0\r\n"
	tests := []struct {
		name, info, cmd string
		want            int64
		wantErr         bool
	}{
		{name: "get", info: info, cmd: "get", want: 1203},
		{name: "case-insensitive name", info: info, cmd: "SET", want: 7},
		{name: "a prefix is not a match", info: "cmdstat_getrange:calls=5,usec=1\r\n", cmd: "get", want: 0},
		{name: "not run yet", info: "# Commandstats\r\n", cmd: "get", want: 0},
		{name: "bad count", info: "cmdstat_get:calls=x,usec=1\r\n", cmd: "get", wantErr: true},
		{name: "no calls", info: "cmdstat_get:usec=1\r\n", cmd: "get", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cmdstatCalls(tt.info, tt.cmd)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("cmdstatCalls = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		wantErr  string
	}{
		{name: "simple", in: "+OK\r\n", want: "OK"},
		{name: "integer", in: ":2\r\n", want: "2"},
		{name: "bulk", in: "$3\r\nxxx\r\n", want: "xxx"},
		{name: "bulk with CRLF inside", in: "$4\r\na\r\nb\r\n", want: "a\r\nb"},
		{name: "nil", in: "$-1\r\n", wantErr: errNil.Error()},
		{name: "error", in: "-READONLY You can't write\r\n", wantErr: "READONLY"},
		{name: "short bulk", in: "$5\r\nab\r\n", wantErr: "EOF"},
		{name: "bulk without CRLF", in: "$2\r\nabcd", wantErr: "CRLF"},
		{name: "array", in: "*1\r\n$1\r\na\r\n", wantErr: "unexpected reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readReply = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("readReply = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if got := string(appendCommand(nil, "GET", "key:__rand_int__")); got != "*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n" {
		t.Errorf("appendCommand = %q", got)
	}
	if !errors.Is(func() error { _, err := readReply(bufio.NewReader(strings.NewReader("$-1\r\n"))); return err }(), errNil) {
		t.Error("a nil bulk string is not errNil")
	}
}

func TestCountLogEvents(t *testing.T) {
	log := `{"level":"info","ts":1.5,"msg":"replica left the read set","group":"bench","replica":"127.0.0.1:7002"}
{"level":"info","ts":1.6,"msg":"replica left the read set","group":"bench","replica":"127.0.0.1:7003"}
not json: a panic, say
{"level":"warn","ts":1.7,"msg":"sentinel: replica does not answer INFO","replica":"127.0.0.1:7002"}
{"level":"info","ts":2.5,"msg":"replica left the read set","group":"bench","replica":"127.0.0.1:7002"}
`
	n, err := countLogEvents(strings.NewReader(log), "replica left the read set", "replica", "127.0.0.1:7002")
	if err != nil || n != 2 {
		t.Errorf("countLogEvents = %d, %v; want 2", n, err)
	}
}

func TestReadSetIs(t *testing.T) {
	m, r1, r2 := &lab.Server{Addr: "m"}, &lab.Server{Addr: "r1"}, &lab.Server{Addr: "r2"}
	nodes := []*lab.Server{m, r1, r2}
	tests := []struct {
		name  string
		delta []int64
		want  []*lab.Server
		ok    bool
	}{
		{"both replicas", []int64{0, 11, 9}, []*lab.Server{r1, r2}, true},
		{"one replica", []int64{0, 20, 0}, []*lab.Server{r1}, true},
		{"the second not yet back", []int64{0, 20, 0}, []*lab.Server{r1, r2}, false},
		{"a read fell back to the master", []int64{1, 19, 0}, []*lab.Server{r1}, false},
		{"reads missing", []int64{0, 19, 0}, []*lab.Server{r1}, false},
		{"a stopped replica still reached", []int64{0, 10, 10}, []*lab.Server{r1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readSetIs(tt.delta, nodes, tt.want, 20); got != tt.ok {
				t.Errorf("readSetIs(%v, want %v) = %v", tt.delta, tt.want, got)
			}
		})
	}
}

func TestRotate(t *testing.T) {
	xs := []int{1, 2, 3}
	for round, want := range [][]int{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}, {1, 2, 3}} {
		if got := rotate(xs, round); !slices.Equal(got, want) {
			t.Errorf("rotate(%v, %d) = %v, want %v", xs, round, got, want)
		}
	}
	if !slices.Equal(xs, []int{1, 2, 3}) {
		t.Errorf("rotate changed its argument: %v", xs)
	}
}

func TestShares(t *testing.T) {
	ss := []sample{
		{nodeGets: []int64{0, 60, 40}},
		{nodeGets: []int64{0, 50, 50}},
		{nodeGets: []int64{10, 45, 45}},
		{nodeGets: []int64{0, 0, 0}}, // nothing measured: left out
	}
	got := shares(ss)
	want := []float64{0, 50, 45}
	if !slices.Equal(got, want) {
		t.Errorf("shares = %v, want the per-node medians %v", got, want)
	}
	if shares(nil) != nil {
		t.Error("shares of no samples is not nil")
	}
}

// tlsResults has all four TLS endpoints in one test, two rounds.
func tlsResults() *results {
	r := newResults(tlsWorkloads, []string{epRedis, epRedisTLS, epSwitchyardPlain, epSwitchyardTLS})
	k := caseKey{"tls-c50p1", "get"}
	for _, d := range []float64{1, 1.2} {
		r.add(k, epRedis, sample{rps: 100000 * d, p50: 0.5, p99: 1.0, cpu: 1, requests: 100000})
		r.add(k, epRedisTLS, sample{rps: 60000 * d, p50: 0.7, p99: 1.5, cpu: 2, requests: 100000})
		r.add(k, epSwitchyardPlain, sample{rps: 80000 * d, p50: 0.9, p99: 2.0, cpu: 2, requests: 100000})
		r.add(k, epSwitchyardTLS, sample{rps: 40000 * d, p50: 1.2, p99: 3.0, cpu: 3, requests: 100000})
	}
	return r
}

func TestWriteTLS(t *testing.T) {
	var b strings.Builder
	tlsResults().writeTLS(&b)
	out := b.String()
	for _, want := range []string{
		"| 50 clients, pipeline 1 | GET | redis | 110000 | — | — | — | 0.500 | — | 1.000 | — | 1.00 |",
		"| 50 clients, pipeline 1 | GET | redis TLS | 66000 | 0.60× | 0.60× | 0.60–0.60 | 0.700 | +0.200 | 1.500 | +0.500 | 2.00 |",
		"| 50 clients, pipeline 1 | GET | switchyard | 88000 | 0.80× | — | — | 0.900 | — | 2.000 | — | 2.00 |",
		"| 50 clients, pipeline 1 | GET | switchyard TLS | 44000 | 0.40× | 0.50× | 0.50–0.50 | 1.200 | +0.300 | 3.000 | +1.000 | 3.00 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("TLS table lacks\n%s\ngot:\n%s", want, out)
		}
	}
	header := strings.Count(strings.SplitN(out, "\n", 2)[0], "|")
	for line := range strings.Lines(out) {
		if strings.Count(line, "|") != header {
			t.Errorf("row with %d separators, header %d: %s", strings.Count(line, "|"), header, line)
		}
	}
}

func TestWriteReads(t *testing.T) {
	r := newResults(readWorkloads, []string{epRedis, epMainPort, epRead1, epRead2})
	k := caseKey{"reads-c200", "get"}
	for _, d := range []float64{1, 2, 3} {
		r.add(k, epRedis, sample{rps: 40000 * d, p50: 2, p99: 5, cpu: 1.5, requests: 100000, nodeGets: []int64{100000, 0, 0}})
		r.add(k, epMainPort, sample{rps: 30000 * d, p50: 3, p99: 7, cpu: 2, requests: 100000, nodeGets: []int64{100000, 0, 0}})
		r.add(k, epRead1, sample{rps: 33000 * d, p50: 3, p99: 7, cpu: 2.5, requests: 100000, nodeGets: []int64{0, 100000, 0}})
		r.add(k, epRead2, sample{rps: 36000 * d, p50: 3, p99: 7, cpu: 2.5, requests: 100000, nodeGets: []int64{0, 51000, 49000}})
	}
	var b strings.Builder
	r.writeReads(&b)
	out := b.String()
	for _, want := range []string{
		"| GET, 200 clients | redis (direct to the master) | 80000 | — | — | — | 2.000 | 5.000 | 100 % | 0 % | 0 % | 1.50 |",
		"| GET, 200 clients | switchyard main port (master only) | 60000 | 0.75× | — | — |",
		"| GET, 200 clients | switchyard read port, 1 replica | 66000 | 0.82× | 1.10× | 1.10–1.10 | 3.000 | 7.000 | 0 % | 100 % | 0 % | 2.50 |",
		"| GET, 200 clients | switchyard read port, 2 replicas | 72000 | 0.90× | 1.20× | 1.20–1.20 | 3.000 | 7.000 | 0 % | 51 % | 49 % | 2.50 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reads table lacks\n%s\ngot:\n%s", want, out)
		}
	}
	header := strings.Count(strings.SplitN(out, "\n", 2)[0], "|")
	for line := range strings.Lines(out) {
		if strings.Count(line, "|") != header {
			t.Errorf("row with %d separators, header %d: %s", strings.Count(line, "|"), header, line)
		}
	}

	rb := &readsBench{leave: []time.Duration{300 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}}
	b.Reset()
	rb.writeReadSetTimes(&b)
	if want := "after 0.20 s (median of 3; 0.10–0.30 s)"; !strings.Contains(b.String(), want) {
		t.Errorf("read-set times %q lack %q", b.String(), want)
	}
}

func TestFileConfig(t *testing.T) {
	c := fileConfig{
		admin: "127.0.0.1:9", listen: "127.0.0.1:10",
		tlsListen: "127.0.0.1:11", certFile: "/d/server.pem", key: "/d/server-key.pem",
		readListen:     "127.0.0.1:12",
		sentinelMaster: "bench", sentinels: []string{"127.0.0.1:1", "127.0.0.1:2"},
	}
	want := `admin_listen: 127.0.0.1:9
log:
  level: info
  format: json
groups:
  - name: bench
    listen: 127.0.0.1:10
    tls:
      listen: 127.0.0.1:11
      cert_file: "/d/server.pem"
      key_file: "/d/server-key.pem"
    read_listen: 127.0.0.1:12
    sentinel:
      master_name: bench
      addrs: [127.0.0.1:1, 127.0.0.1:2]
`
	if got := c.yaml(); got != want {
		t.Errorf("yaml:\n%s\nwant:\n%s", got, want)
	}
	plain := fileConfig{admin: "127.0.0.1:9", listen: "127.0.0.1:10", upstream: "127.0.0.1:6379"}.yaml()
	if strings.Contains(plain, "tls:") || strings.Contains(plain, "read_listen") || !strings.HasSuffix(plain, "    upstream: 127.0.0.1:6379\n") {
		t.Errorf("plain fixed-upstream yaml:\n%s", plain)
	}
}

func TestWriteCerts(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f, err := writeCerts(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(f.key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: %v, %v; want mode 0600", f.key, fi, err)
	}
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if filepath.Dir(f.ca) != dir {
		t.Errorf("CA written to %s, want %s", f.ca, dir)
	}

	// The harness's own client configuration completes a handshake with a
	// server using the certificate.
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	tc, err := f.clientTLS()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), tc)
	if err != nil {
		t.Fatalf("handshake with the client configuration: %v", err)
	}
	c.Close()
}

func TestParseProcStatBusy(t *testing.T) {
	stat := "cpu  100 5 50 9000 20 3 2 1 7 0\ncpu0 50 2 25 4500 10 1 1 0 3 0\nintr 12345\n"
	got, err := parseProcStatBusy(stat)
	if err != nil || got != 100+5+50+3+2+1 {
		t.Errorf("parseProcStatBusy = %d, %v; want %d (user, nice, system, irq, softirq, steal)", got, err, 100+5+50+3+2+1)
	}
	for _, bad := range []string{"intr 1\n", "cpu 1 2 3\n", "cpu  1 2 x 4 5 6 7 8\n"} {
		if _, err := parseProcStatBusy(bad); err == nil {
			t.Errorf("parseProcStatBusy(%q) accepted it", bad)
		}
	}
}
