// Command gen records the COMMAND reply of a real redis-server into
// router/commands_gen.go, the built-in command table. It starts its own
// redis-server (the one on PATH, or -redis-server) on a free loopback port
// in a temporary directory and stops it when done. Run it through
// "go generate ./router/" from the module root.
//
// It does not import package router, so that it still builds when
// commands_gen.go is missing or broken; router's tests check that the
// recorded reply parses.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/router/internal/snapshot"
)

func main() {
	out := flag.String("o", "commands_gen.go", "output `file`")
	bin := flag.String("redis-server", "", "redis-server `binary` (default: redis-server on PATH)")
	flag.Parse()
	if err := run(*out, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out, bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "switchyard-gen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := lab.StartServer(ctx, lab.ServerOptions{Dir: dir, Binary: bin})
	if err != nil {
		return err
	}
	defer srv.Stop()

	raw, version, err := snapshot.Fetch(ctx, srv.Addr, 2)
	if err != nil {
		return err
	}
	src, err := snapshot.Render(raw, version)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, src, 0o644); err != nil {
		return err
	}
	fmt.Printf("gen: wrote %s from redis-server %s (%d bytes of COMMAND reply)\n", out, version, len(raw))
	return nil
}
