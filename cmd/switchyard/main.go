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
	"syscall"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

const usage = `usage: switchyard [command] [flags]

commands:
  serve         run the proxy (the default)
  check-config  validate the configuration, print its warnings, and exit
  status        print the groups' state from a running instance's /status
  version       print the version

The configuration is the -config file, else $SWITCHYARD_CONFIG, else the
environment (REDIS_SENTINEL_HOSTS, REDIS_SENTINEL_MASTER, REDIS_HOST, ...):
see docs/configuration.md. SIGHUP reloads the file; SIGTERM drains.

flags:
`

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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
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
			if addr == "" {
				fmt.Fprintln(os.Stderr, "switchyard: status: the configuration sets no admin_listen, so there is no /status to read; give -admin host:port")
				return 1
			}
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
		for _, w := range c.warnings {
			fmt.Println("warning:", w)
		}
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
	level := zap.NewAtomicLevel()
	log, err := newLogger(cfg.Log, level)
	if err != nil {
		return err
	}
	defer log.Sync()
	// go-redis (used to talk to Sentinels) logs on its own otherwise.
	redis.SetLogger(goRedisLog{log.Named("go-redis")})

	m := newMetrics()
	sup := newSupervisor(log, m, cfg.DrainTimeout)
	if err := sup.start(cfg.Groups); err != nil {
		return err
	}
	admin, err := startAdmin(cfg.AdminListen, sup.groups, sup.drainingGroups, m, log)
	if err != nil {
		sup.shutdown()
		return err
	}
	defer admin.Close()
	fac, err := startFacade(cfg, sup.groups, log)
	if err != nil {
		sup.shutdown()
		return err
	}
	defer fac.Close()
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	log.Info("started", zap.String("version", version), zap.Int("groups", len(cfg.Groups)))

	// Room for a burst: the runtime drops a signal the channel has no
	// room for, and a SIGTERM sent just after SIGHUPs must not be lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-sup.failed:
			log.Error("stopping: a group failed", zap.Error(err))
			sup.shutdown()
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(path, cfg, sup, level, log)
				fac.update(cfg)
				continue
			}
			log.Info("draining", zap.String("signal", sig.String()), zap.Duration("drain_timeout", sup.drain))
			admin.draining.Store(true)
			go func() {
				// A second SIGINT or SIGTERM means: stop now. A SIGHUP
				// (one sent with this one, say) changes nothing now.
				for sig := range sigs {
					if sig != syscall.SIGHUP {
						log.Warn("second signal: exiting at once", zap.String("signal", sig.String()))
						os.Exit(1)
					}
				}
			}()
			sup.shutdown()
			log.Info("stopped")
			return nil
		}
	}
}

// reload re-reads the configuration on SIGHUP. One that fails validation
// changes nothing. Groups are reconciled by name; of the global settings
// only the log level and the drain timeout take effect without a restart.
func reload(path string, running *config, sup *supervisor, level zap.AtomicLevel, log *zap.Logger) {
	cfg, err := loadConfig(path)
	if err != nil {
		log.Error("reload failed; keeping the running configuration", zap.Error(err))
		return
	}
	if l, err := zap.ParseAtomicLevel(cfg.Log.Level); err == nil {
		level.SetLevel(l.Level())
	}
	if cfg.AdminListen != running.AdminListen || cfg.Log.Format != running.Log.Format {
		log.Warn("admin_listen and log.format change only with a restart")
	}
	sup.drain = cfg.DrainTimeout
	if err := sup.reload(cfg); err != nil {
		log.Error("reload: some groups did not start", zap.Error(err))
	}
	// What runs, as it runs: a changed group that could not start went
	// back to its previous configuration, and one that could not start
	// at all is left out, so that the facade names only addresses that
	// are served (a group's port may be taken by another process).
	serving := sup.configs()
	var groups []groupConfig
	for _, gc := range cfg.Groups {
		if run, ok := serving[gc.Name]; ok {
			groups = append(groups, run)
		}
	}
	running.Groups = groups
	running.Log.Level = cfg.Log.Level
	running.SentinelFacade = cfg.SentinelFacade
}

// goRedisLog sends go-redis's own messages (reconnects to Sentinels and
// nodes) to zap at debug level: the watcher logs the events that matter.
type goRedisLog struct{ log *zap.Logger }

func (l goRedisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

func newLogger(c logConfig, level zap.AtomicLevel) (*zap.Logger, error) {
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
	level.SetLevel(lvl.Level())
	zc.Level = level
	zc.DisableStacktrace = true
	return zc.Build()
}
