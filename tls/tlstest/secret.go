package tlstest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WriteSecretVolume writes files into dir the way the kubelet updates a
// Secret volume, so tests see what a pod sees when cert-manager rotates a
// certificate:
//
//	dir/..2026_01_02_15_04_05.NNN/tls.crt   the content, in a fresh directory per update
//	dir/..data -> ..2026_01_02_15_04_05.NNN  swapped atomically by rename(2)
//	dir/tls.crt -> ..data/tls.crt            stable names, created once
//
// Every call makes a new timestamped directory, points ..data at it in one
// rename and removes the previous one, so all files change together and the
// stable paths' own metadata never changes. Call it again with the same
// names to rotate; names absent from a later call dangle, as in Kubernetes.
func WriteSecretVolume(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	data := filepath.Join(dir, "..data")
	old, _ := os.Readlink(data) // "" on the first call

	ts, err := os.MkdirTemp(dir, time.Now().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ts, name), b, 0o600); err != nil {
			t.Fatalf("tlstest: %v", err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp) // left over from a failed call
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	if err := os.Rename(tmp, data); err != nil {
		t.Fatalf("tlstest: swap ..data: %v", err)
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatalf("tlstest: %v", err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatalf("tlstest: remove %s: %v", old, err)
		}
	}
}
