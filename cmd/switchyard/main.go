// Command switchyard is a Sentinel-aware Redis proxy. See the README for
// its configuration; this file wires configuration, logging, the admin
// endpoint and signals around the proxy and sentinel packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// version is stamped by the build: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("switchyard "+cmd, flag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration file (default: $SWITCHYARD_CONFIG, else the environment)")
	admin := fs.String("admin", "", "status: the admin address of a running switchyard (default: admin_listen from the configuration)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd {
	case "serve":
		if err := serve(*path); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard:", err)
			return 1
		}
	case "status":
		addr := *admin
		if addr == "" {
			c, err := loadConfig(*path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "switchyard: status: give -admin host:port, or a valid configuration:", err)
				return 1
			}
			addr = c.AdminListen
		}
		if err := printStatus(os.Stdout, addr); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard:", err)
			return 1
		}
	case "version":
		fmt.Println("switchyard", version)
	case "check-config":
		c, err := loadConfig(*path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "switchyard: invalid configuration:", err)
			return 1
		}
		fmt.Printf("configuration OK: %d group(s)\n", len(c.Groups))
	default:
		fmt.Fprintf(os.Stderr, "switchyard: unknown command %q (want serve, check-config, status or version)\n", cmd)
		return 2
	}
	return 0
}

func serve(path string) error {
	cfg, err := loadConfig(path)
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	// go-redis (used to talk to Sentinels) logs on its own otherwise.
	redis.SetLogger(goRedisLog{log.Named("go-redis")})
	m := newMetrics()

	var groups []*group
	closeAll := func() {
		for _, g := range groups {
			g.l.Close()
		}
	}
	for _, gc := range cfg.Groups {
		g, err := newGroup(gc, log, m)
		if err != nil {
			closeAll()
			return err
		}
		groups = append(groups, g)
	}
	admin, err := startAdmin(cfg.AdminListen, groups, m, log)
	if err != nil {
		closeAll()
		return err
	}
	defer admin.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	failed := make(chan error, len(groups))
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.run(ctx); err != nil {
				failed <- fmt.Errorf("group %q: %w", g.cfg.Name, err)
			}
		}()
	}
	log.Info("started", zap.String("version", version), zap.Int("groups", len(groups)))

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var runErr error
	select {
	case runErr = <-failed:
		log.Error("stopping", zap.Error(runErr))
	case sig := <-sigs:
		log.Info("draining", zap.String("signal", sig.String()), zap.Duration("drain_timeout", cfg.DrainTimeout))
		go func() {
			// A second signal means: stop now.
			<-sigs
			log.Warn("second signal: exiting at once")
			os.Exit(1)
		}()
	}
	drain, cancelDrain := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancelDrain()
	var sd sync.WaitGroup
	for _, g := range groups {
		sd.Add(1)
		go func() {
			defer sd.Done()
			g.srv.Shutdown(drain)
		}()
	}
	sd.Wait()
	cancel()
	wg.Wait()
	log.Info("stopped")
	if errors.Is(runErr, context.Canceled) {
		return nil
	}
	return runErr
}

// goRedisLog sends go-redis's own messages (reconnects to Sentinels and
// nodes) to zap at debug level: the watcher logs the events that matter.
type goRedisLog struct{ log *zap.Logger }

func (l goRedisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

func newLogger(c logConfig) (*zap.Logger, error) {
	var zc zap.Config
	switch c.Format {
	case "console":
		zc = zap.NewDevelopmentConfig()
	default:
		zc = zap.NewProductionConfig()
	}
	lvl, err := zap.ParseAtomicLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level=%q: want debug, info, warn or error", c.Level)
	}
	zc.Level = lvl
	zc.DisableStacktrace = true
	return zc.Build()
}
