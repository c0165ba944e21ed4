// Command demo runs Switchyard in front of a local Sentinel-managed lab
// shaped like the platform's: platform-kv (a master, 2 replicas, 3
// Sentinels) and cache-kv (a master, 1 replica, 3 Sentinels). It writes
// through Switchyard, triggers SENTINEL FAILOVER, shows the switch as
// Switchyard followed it, then leaves everything running until Ctrl-C.
//
// make demo builds the binary and runs this.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/redis/go-redis/v9"
)

func main() {
	bin := flag.String("switchyard", "bin/switchyard", "path to the switchyard binary")
	dir := flag.String("dir", "", "lab directory (default: a new temporary directory)")
	exit := flag.Bool("exit", false, "stop after the failover instead of waiting for Ctrl-C")
	flag.Parse()
	if err := run(*bin, *dir, *exit); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin, dir string, exit bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dir == "" {
		d, err := os.MkdirTemp("", "switchyard-demo-")
		if err != nil {
			return err
		}
		dir = d
	}
	say("lab directory: %s", dir)

	say("starting platform-kv: a master, 2 replicas, 3 Sentinels")
	platform, err := lab.StartGroup(ctx, lab.GroupOptions{Dir: filepath.Join(dir, "platform-kv"), Name: "platform-kv-master", Replicas: 2, Sentinels: 3})
	if err != nil {
		return fmt.Errorf("platform-kv: %w", err)
	}
	defer platform.Stop()
	say("starting cache-kv: a master, 1 replica, 3 Sentinels")
	cache, err := lab.StartGroup(ctx, lab.GroupOptions{Dir: filepath.Join(dir, "cache-kv"), Name: "cache-kv-master", Replicas: 1, Sentinels: 3})
	if err != nil {
		return fmt.Errorf("cache-kv: %w", err)
	}
	defer cache.Stop()
	say("platform-kv master %s, Sentinels %s", platform.Master.Addr, sentinelAddrs(platform))
	say("cache-kv    master %s, Sentinels %s", cache.Master.Addr, sentinelAddrs(cache))

	platformPort, cachePort, adminPort := port(6379), port(6380), port(9190)
	cfgPath := filepath.Join(dir, "switchyard.yaml")
	cfg := fmt.Sprintf(`admin_listen: 127.0.0.1:%d
log: {level: info, format: console}
groups:
  - name: platform-kv
    listen: 127.0.0.1:%d
    sentinel: {master_name: platform-kv-master, addrs: [%s]}
  - name: cache-kv
    listen: 127.0.0.1:%d
    sentinel: {master_name: cache-kv-master, addrs: [%s]}
`, adminPort, platformPort, strings.Join(sentinelAddrs(platform), ", "), cachePort, strings.Join(sentinelAddrs(cache), ", "))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}

	sy := exec.Command(bin, "-config", cfgPath)
	logs, err := sy.StderrPipe()
	if err != nil {
		return err
	}
	sy.Stdout = os.Stdout
	if err := sy.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run make build first)", bin, err)
	}
	var logWG sync.WaitGroup
	logWG.Add(1)
	go func() {
		defer logWG.Done()
		relay(logs)
	}()
	defer func() {
		sy.Process.Signal(syscall.SIGTERM)
		sy.Wait()
		logWG.Wait()
	}()
	say("switchyard: platform-kv on 127.0.0.1:%d, cache-kv on 127.0.0.1:%d, admin on 127.0.0.1:%d", platformPort, cachePort, adminPort)
	if err := waitReady(ctx, adminPort); err != nil {
		return err
	}

	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", platformPort), MaxRetries: -1})
	defer c.Close()
	w := startWriter(ctx, c)
	waitUntil(ctx, func() bool { return w.acked.Load() > 100 })
	say("writer: INCR demo:counter through switchyard, %d acknowledged so far", w.acked.Load())

	old := platform.Master
	say("triggering SENTINEL FAILOVER platform-kv-master (master is %s)", old.Addr)
	t0 := time.Now()
	newM, err := platform.Failover(ctx)
	if err != nil {
		w.stop()
		return fmt.Errorf("failover: %w", err)
	}
	say("Sentinels promoted %s after %v", newM.Addr, time.Since(t0).Round(time.Millisecond))
	before := w.acked.Load()
	waitUntil(ctx, func() bool { return w.acked.Load() > before+100 })
	w.stop()

	acked := w.acked.Load()
	counter, err := newM.Client().Get(context.Background(), "demo:counter").Int64()
	if err != nil {
		return fmt.Errorf("read the counter on the new master: %w", err)
	}
	say("writes acknowledged: %d, failed: %d, longest gap between acknowledged writes: %v",
		acked, w.failed.Load(), w.longestGap().Round(time.Millisecond))
	say("demo:counter on the new master %s is %d (every acknowledged INCR is there: %v)", newM.Addr, counter, counter >= acked)
	if counter < acked {
		return fmt.Errorf("lost acknowledged writes: counter %d < acknowledged %d", counter, acked)
	}
	if exit {
		return nil
	}
	say("")
	say("everything keeps running; try:")
	say("  redis-cli -p %d SET greeting hello", platformPort)
	say("  redis-cli -p %d GET greeting", platformPort)
	say("  redis-cli -p %s SENTINEL FAILOVER platform-kv-master   # then watch switchyard follow", strings.Split(platform.Sentinels[0].Addr, ":")[1])
	say("  curl -s 127.0.0.1:%d/metrics | grep switchyard", adminPort)
	say("Ctrl-C stops every process the demo started.")
	<-ctx.Done()
	say("stopping")
	return nil
}

func sentinelAddrs(g *lab.Group) []string {
	var out []string
	for _, s := range g.Sentinels {
		out = append(out, s.Addr)
	}
	return out
}

// port returns want if it is free on loopback, else a free one.
func port(want int) int {
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", want)); err == nil {
		l.Close()
		return want
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return want
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	say("port %d is taken; using %d", want, p)
	return p
}

func waitReady(ctx context.Context, adminPort int) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				say("switchyard is ready: both groups have a verified master")
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("switchyard did not become ready within 20s")
}

func waitUntil(ctx context.Context, cond func() bool) {
	for !cond() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writer increments a counter as fast as one client can, recording every
// acknowledged write and the longest time without one.
type writer struct {
	acked, failed atomic.Int64
	done          chan struct{}
	wg            sync.WaitGroup
	mu            sync.Mutex
	last          time.Time
	gap           time.Duration
}

func startWriter(ctx context.Context, c *redis.Client) *writer {
	w := &writer{done: make(chan struct{}), last: time.Now()}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			default:
			}
			if err := c.Incr(ctx, "demo:counter").Err(); err != nil {
				w.failed.Add(1)
				time.Sleep(5 * time.Millisecond)
				continue
			}
			w.acked.Add(1)
			w.mu.Lock()
			if g := time.Since(w.last); g > w.gap {
				w.gap = g
			}
			w.last = time.Now()
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) stop() {
	close(w.done)
	w.wg.Wait()
}

func (w *writer) longestGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gap
}

// relay prints Switchyard's log lines, indented under the demo's own.
func relay(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fmt.Println("    switchyard |", sc.Text())
	}
}

func say(format string, args ...any) {
	fmt.Printf("demo | "+format+"\n", args...)
}
