package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// installer finds the reference proxies and installs the Debian packages
// that provide them when they are missing and the harness may do so (root,
// apt-get present). It runs apt-get update at most once.
type installer struct {
	updated bool
}

// errCannotInstall marks a missing binary that the harness could not
// install; the caller skips that endpoint.
var errCannotInstall = errors.New("not installed")

// find returns the path of bin, installing pkg with apt-get if needed.
func (in *installer) find(ctx context.Context, bin, pkg string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: %s (install it: sudo apt-get install %s)", errCannotInstall, bin, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%w: %s, and there is no apt-get to install %s with", errCannotInstall, bin, pkg)
	}
	if !in.updated {
		logf("apt-get update")
		if err := apt(ctx, "update", "-qq"); err != nil {
			return "", fmt.Errorf("%w: %s: %w", errCannotInstall, bin, err)
		}
		in.updated = true
	}
	logf("apt-get install %s", pkg)
	if err := apt(ctx, "install", "-y", "-qq", "--no-install-recommends", pkg); err != nil {
		return "", fmt.Errorf("%w: %s: %w", errCannotInstall, bin, err)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %s is still missing after installing %s", errCannotInstall, bin, pkg)
	}
	return p, nil
}

// apt runs apt-get non-interactively; its output is shown only on failure.
func apt(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(out.String(), 10))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
