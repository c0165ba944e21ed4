// Command switchyard is a Sentinel-aware Redis proxy. See the README for
// its configuration; this file wires configuration, logging, the admin
// endpoint and signals around the proxy package.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pnats/switchyard/proxy"
	"go.uber.org/zap"
)

// version is stamped by the build: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard:", err)
			os.Exit(1)
		}
	case "version", "-version", "--version":
		fmt.Println("switchyard", version)
	case "check-config":
		if _, err := loadConfig(); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard:", err)
			os.Exit(1)
		}
		fmt.Println("configuration OK")
	default:
		fmt.Fprintf(os.Stderr, "switchyard: unknown command %q (want serve, check-config or version)\n", cmd)
		os.Exit(2)
	}
}

func serve() error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync()

	pcfg := cfg.proxyConfig()
	pcfg.Logger = log
	srv := proxy.New(pcfg)
	srv.SetMaster(1, cfg.upstream())

	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on SWITCHYARD_LISTEN=%q: %w", cfg.Listen, err)
	}
	log.Info("serving", zap.String("listen", l.Addr().String()), zap.String("upstream", cfg.upstream()), zap.String("version", version))

	admin, err := startAdmin(cfg.AdminListen, srv, log)
	if err != nil {
		l.Close()
		return err
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-served:
		if !errors.Is(err, proxy.ErrServerClosed) {
			srv.Close()
			admin.Close()
			return err
		}
	case sig := <-sigs:
		log.Info("draining", zap.String("signal", sig.String()), zap.Duration("drain_timeout", cfg.DrainTimeout))
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		go func() {
			// A second signal means: stop now.
			<-sigs
			log.Warn("second signal: exiting at once")
			os.Exit(1)
		}()
		srv.Shutdown(ctx)
		cancel()
	}
	admin.Close()
	log.Info("stopped")
	return nil
}

func newLogger(level, format string) (*zap.Logger, error) {
	var zc zap.Config
	switch format {
	case "json", "":
		zc = zap.NewProductionConfig()
	case "console":
		zc = zap.NewDevelopmentConfig()
	default:
		return nil, fmt.Errorf("SWITCHYARD_LOG_FORMAT=%q: want json or console", format)
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("SWITCHYARD_LOG_LEVEL=%q: want debug, info, warn or error", level)
	}
	zc.Level = lvl
	zc.DisableStacktrace = true
	return zc.Build()
}

// durationSeconds parses seconds as the seed's variables give them
// ("0.1"), into a duration.
func durationSeconds(name string, v float64) (time.Duration, error) {
	if v < 0 {
		return 0, fmt.Errorf("%s=%v: must be zero or more seconds", name, v)
	}
	return time.Duration(v * float64(time.Second)), nil
}
